"""One error root for the connector, grouped by what the caller must do next.

```
ConnectorError
├─ ConfigError     startup fails, exit 1; names the YAML path of each problem
├─ PayloadError    the webhook body is rejected: 400/413/415/422 + quarantine; carries the field path
├─ StoreError      the ledger cannot be reached: 503, and 2X retries; workers back off
│  └─ StoreDataError  the store refused a value (too long, NUL byte): a body problem, not an outage
├─ MappingError    planning fails; names the mapping file and line; the event stays replayable
└─ SinkError(sink, action, status, code, crm_message)   a CRM call failed; decides the delivery's fate
   ├─ TransientError(retry_after)   reschedule with backoff
   │  ├─ RateLimited                honour Retry-After / the CRM's rate window, for the whole sink
   │  ├─ OutcomeUnknown             the answer was lost: the CRM may have applied the write; look it up first
   │  ├─ StaleContact               the resolved contact is gone (deleted, merged): resolve it again
   │  └─ LeaseLost                  this worker's claim was released (declared dead): stop, another owns it
   ├─ PermanentError                dead-letter at once, with the CRM's own error
   ├─ AuthError                     pause the sink; deliveries wait, none is dead-lettered
   └─ MissingFields(fields)         the CRM lacks fields that must not be skipped: pause the sink, like AuthError
```

Messages never contain secrets, phone numbers, names or transcript text: they name the
place (YAML path, field path) and the kind of problem, not the personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration or mapping file."""

    path: str
    """Dotted YAML path, e.g. ``receiver.auth.tokens[0]``; ``<root>`` for the document itself."""
    message: str


class ConfigError(ConnectorError):
    """The configuration cannot be used; every problem found is listed, not only the first."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {p.path}: {p.message}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass
class PayloadError(ConnectorError):
    """A webhook body we will not accept; the receiver answers ``status`` and quarantines the body."""

    status: int
    """HTTP status for the answer: 400, 413, 415 or 422."""
    code: str
    """Stable machine-readable code, e.g. ``invalid_json``, ``validation_failed``."""
    detail: str
    """Human-readable explanation, free of personal data."""
    errors: list[dict[str, str]] = field(default_factory=list)
    """Per-field problems: ``{"path": "call.duration", "message": "..."}``."""

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.detail}")


class StoreError(ConnectorError):
    """The ledger is unreachable or failed; nothing was acknowledged."""


class StoreDataError(StoreError):
    """The store refused a value (SQLAlchemy `DataError`); retrying the same data cannot help."""


class MappingError(ConnectorError):
    """A mapping cannot turn this event into a plan; the event stays stored and replayable."""


class SinkError(ConnectorError):
    """A CRM call failed. Subclasses say what the delivery engine does next."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        crm_message: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status of the CRM's answer, when there was one."""
        self.code = code
        """The CRM's own error code (HubSpot category / Salesforce errorCode)."""
        self.crm_message = crm_message
        """The CRM's own message, kept for the audit trail and the dead-letter reason."""
        self.retry_after = retry_after
        """Seconds the CRM asked us to wait, if it said."""
        self.details = list(details or [])
        """The CRM's structured error items, ``{"code", "message", "fields"}`` each, complete (``crm_message`` is
        cut for the audit trail): what a sink reads to learn which fields a write was refused for."""


class TransientError(SinkError):
    """Worth retrying later: timeouts, connection errors, 408/5xx, lock contention."""


class RateLimited(TransientError):
    """The CRM's rate limit was hit; the whole sink waits, not only this delivery."""


class OutcomeUnknown(TransientError):
    """Transient, and the CRM may have carried the request out: its answer was lost (read timeout, dropped
    connection) or was a 5xx. A write must be looked up before it is sent again. A request that never left (no
    connection), a 4xx, 408, or a rate limit is never this: the CRM refused it before writing."""


class AwaitingIndex(TransientError):
    """A write may have been applied that the CRM's search does not show yet (HubSpot's index lags): the delivery
    waits exactly `retry_after`, then searches again (or writes). Not a failed attempt, so not on the retry
    schedule: after a crash, a lead whose contact create was in flight waited 35 to 130 s behind it, not 10."""


class StaleContact(TransientError):
    """The contact this plan resolved to no longer exists in the CRM (deleted or merged away).

    The engine forgets it (contact cache and the plan's resolve step) and retries, so the next
    attempt resolves the lead again instead of failing forever on a dead id.
    """


class LeaseLost(TransientError):
    """The worker no longer holds the delivery's lease (it was declared dead and its claims were
    released): it must not call the CRM for it again. Finishing then changes nothing either."""


class PermanentError(SinkError):
    """Retrying cannot help (validation error): dead-letter with the CRM's message."""


class AuthError(SinkError):
    """Credentials rejected: pause the sink until they work again; dead-letter nothing."""


class MissingFields(SinkError):
    """The CRM lacks (or refuses) fields the sink must not skip: do-not-call, an idempotency key, or any field when
    the sink says ``on_missing_field: hold``. Every event would need them, so the sink pauses like on AuthError
    (nothing dead-lettered) until an operator runs crm-setup; ``fields`` maps ``Object.Field`` to the CRM's code."""

    def __init__(self, message: str, *, fields: dict[str, str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.fields = dict(fields)
