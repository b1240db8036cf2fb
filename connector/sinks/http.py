"""A generic HTTP sink: each planned action is POSTed as JSON to your own endpoint.

Useful on its own (forward call outcomes to an in-house system or a CRM we have no sink for) and
the reference example of the extension point (docs/sinks.md). The endpoint contract:

- ``POST {url}/actions`` with ``{"key", "kind", "action", "contact"}`` → 2xx ``{"id": "..."}``;
- ``GET {url}/actions/{key}`` → 200 ``{"id": "..."}`` when that key was written, 404 otherwise;
- ``GET {url}/health`` → 2xx when the credentials work.

Errors: 401/403 pause the sink; 429 (with ``Retry-After``) rate-limits it; 408, 5xx, timeouts and
connection errors retry; other 4xx dead-letter with the endpoint's message. A POST whose answer was lost (read
timeout, dropped connection, 5xx) may have been applied: the sink looks its key up before sending it again, so the
endpoint need not deduplicate by key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import Field

from connector.errors import AuthError, OutcomeUnknown, PermanentError, RateLimited, TransientError
from connector.plan import Action
from connector.sinks.base import ActionResult, ExecutionContext, RateGate, SinkCapabilities, SinkType
from connector.sinks.retry_after import retry_after_header
from connector.sinks.settings import SinkSettingsBase
from connector.sinks.uncertain import UncertainWrites, never_connected

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class HttpSinkSettings(SinkSettingsBase):
    """Config of a `type: http` sink."""

    type: Literal["http"] = "http"
    url: str = Field(description="Base URL of the endpoint.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request (e.g. auth).")
    timeout_s: float = Field(READ_TIMEOUT_S, gt=0)


class HttpSink:
    """Posts actions to an HTTP endpoint; see the module docstring for the contract."""

    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities()

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = (
            settings
            if isinstance(settings, HttpSinkSettings)
            else HttpSinkSettings.model_validate(settings.model_dump())
        )
        self._session: requests.Session | None = None
        self._gate: RateGate | None = None
        self._uncertain = UncertainWrites()

    def open(self, gate: RateGate) -> None:
        self._gate = gate
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": "twox-crm-connector", **self.settings.headers})

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        if action.key in self._uncertain:
            written = self.lookup(action, context)
            self._uncertain.settle([action.key])
            if written is not None:
                return written
        contact = context.contact()
        body = {
            "key": action.key,
            "kind": action.kind,
            "action": action.model_dump(mode="json"),
            "contact": contact.crm_id if contact else None,
        }
        try:
            answer = self._request("POST", "/actions", json=body, may_write=True)
            payload = answer.json() if answer.content else {}
        except OutcomeUnknown:
            self._uncertain.mark([action.key])
            raise
        except requests.JSONDecodeError as exc:  # a 2xx that is not JSON: written, but we cannot tell its id
            self._uncertain.mark([action.key])
            raise OutcomeUnknown("the endpoint answered the POST with an unreadable body") from exc
        self._uncertain.settle([action.key])
        return ActionResult(
            crm_id=str(payload.get("id")) if payload.get("id") is not None else None,
            object=payload.get("object", action.kind),
            created=answer.status_code == 201,
        )

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        answer = self._request("GET", f"/actions/{quote(action.key, safe='')}", allow=(404,))
        if answer.status_code == 404:
            return None
        payload = answer.json()
        return ActionResult(crm_id=str(payload.get("id")), object=payload.get("object", action.kind))

    def check_auth(self) -> None:
        self._request("GET", "/health")

    def _request(
        self, method: str, path: str, *, allow: tuple[int, ...] = (), may_write: bool = False, **kwargs: Any
    ) -> requests.Response:
        """One request; ``may_write``: a lost answer or a 5xx may follow a write (OutcomeUnknown)."""
        assert self._session is not None and self._gate is not None, "open() first"
        self._gate.wait()
        with _translated_errors(may_write):
            answer = self._session.request(
                method,
                self.settings.url.rstrip("/") + path,
                timeout=(CONNECT_TIMEOUT_S, self.settings.timeout_s),
                **kwargs,
            )
        if answer.ok or answer.status_code in allow:
            return answer
        raise _classify(answer, may_write)


@contextlib.contextmanager
def _translated_errors(may_write: bool) -> Iterator[None]:
    try:
        yield
    except (requests.Timeout, requests.ConnectionError) as exc:
        what = "timeout" if isinstance(exc, requests.Timeout) else "connection failed"
        message = f"{what}: {exc.__class__.__name__}"
        if may_write and not never_connected(exc):
            raise OutcomeUnknown(message) from exc
        raise TransientError(message) from exc


def _classify(answer: requests.Response, may_write: bool = False) -> Exception:
    status = answer.status_code
    message = answer.text[:1000]
    if status in (401, 403):
        return AuthError(f"HTTP {status}", status=status, crm_message=message)
    if status == 429:
        return RateLimited(
            f"HTTP {status}", status=status, crm_message=message, retry_after=retry_after_header(answer.headers)
        )
    if status >= 500 and may_write:
        return OutcomeUnknown(
            f"HTTP {status}", status=status, crm_message=message, retry_after=retry_after_header(answer.headers)
        )
    if status == 408 or status >= 500:
        return TransientError(
            f"HTTP {status}", status=status, crm_message=message, retry_after=retry_after_header(answer.headers)
        )
    return PermanentError(f"HTTP {status}", status=status, crm_message=message)


factory = SinkType(settings_model=HttpSinkSettings, build=HttpSink)
"""Entry point of the `http` sink type: its settings model and its factory (no optional abilities)."""
