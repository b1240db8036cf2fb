"""The emulated org's mutable state (records, sessions, API usage, injected faults, log) and the request types.

One ``RLock`` guards everything; the HTTP layer holds it for the whole request, which serializes requests and
makes all-or-none snapshots trivially consistent (throughput is irrelevant for an emulator).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from connector.emulators.salesforce.errors import MSG_LIMIT, MSG_SESSION, SalesforceApiError, json_parser_error
from connector.emulators.salesforce.ids import IdGenerator, checksum_suffix, find_ids
from connector.emulators.salesforce.schema import build_schema
from connector.emulators.salesforce.security import Security, security_objects, tooling_objects
from connector.emulators.salesforce.seed import seed
from connector.emulators.salesforce.store import Store

UNSET: Any = object()
# Default messages for injected faults. UNABLE_TO_LOCK_ROW is the observed text (with the locked record's id).
_FAULT_MESSAGES = {
    "SERVER_UNAVAILABLE": "Server temporarily unavailable",
    "REQUEST_LIMIT_EXCEEDED": MSG_LIMIT,
    "INVALID_SESSION_ID": MSG_SESSION,
    "UNKNOWN_EXCEPTION": "An unexpected error occurred.",
}


@dataclass
class Result:
    """A handler's answer: status, JSON-able body (None: no body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One REST request (top-level or a composite subrequest), path relative to ``/services/data/vXX.X``."""

    method: str
    version: str
    path: str
    args: MultiDict[str, str]
    headers: Mapping[str, str]
    raw: str | None = None
    body: Any = UNSET
    all_or_none: bool = False  # set by an enclosing allOrNone composite: overrides a collection's own flag
    log: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The parsed body; malformed or empty JSON is Salesforce's JSON_PARSER_ERROR."""
        if self.body is UNSET:
            if not self.raw or not self.raw.strip():
                raise json_parser_error("No content to map to Object due to end of input")
            try:
                self.body = json.loads(self.raw)
            except json.JSONDecodeError as exc:
                found = self.raw[exc.pos] if exc.pos < len(self.raw) else "EOF"
                raise json_parser_error(
                    f"Unexpected character ('{found}' (code {ord(found) if len(found) == 1 else -1}"
                    f")): {exc.msg} at [line:{exc.lineno}, column:{exc.colno}]"
                ) from None
        return self.body


@dataclass
class FaultRule:
    """``fail_next``: the next ``remaining`` requests whose path (and query) contain ``path_contains`` fail."""

    remaining: int
    status: int
    error_code: str
    message: str | None
    path_contains: str | None

    def error(self, target: str, fallback_id: str) -> SalesforceApiError:
        message = self.message
        if message is None and self.error_code == "UNABLE_TO_LOCK_ROW":
            ids = find_ids(target)
            message = f"unable to obtain exclusive access to this record or 1 records: {ids[0] if ids else fallback_id}"
        return SalesforceApiError(
            self.status,
            self.error_code,
            message or _FAULT_MESSAGES.get(self.error_code, self.error_code.replace("_", " ").lower()),
            [],
        )


class Org:
    """Everything one emulator instance knows."""

    def __init__(
        self, *, session_ids: Iterable[str], daily_limit: int, seed_records: bool, with_custom_fields: bool
    ) -> None:
        self.lock = threading.RLock()
        self.ids = IdGenerator()
        self.store = Store(
            {**build_schema(with_custom_fields=with_custom_fields), **security_objects()}, self.ids, self.now
        )
        self.tooling = Store(tooling_objects(), self.ids, self.now)
        self.security = Security(self.store, self.tooling)
        self.security.register_existing_custom_fields()
        self.store.write_guard = self.security.guard
        self.seed_ids: dict[str, str] = seed(self.store) if seed_records else {}
        self.sessions: set[str] = set(session_ids)
        self.daily_limit = daily_limit
        self.used = 0
        self.faults: list[FaultRule] = []
        self.search_lag = 0.0
        self.log: list[dict[str, Any]] = []
        self.cursors: dict[str, list[dict[str, Any]]] = {}

    @staticmethod
    def now() -> datetime:
        """The org's clock (UTC, millisecond precision like Salesforce's)."""
        value = datetime.now(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    def usage_header(self) -> str:
        """``Sforce-Limit-Info`` value [docs: REST API Developer Guide, "Limit Info Header"]."""
        return f"api-usage={self.used}/{self.daily_limit}"

    def take_fault(self, target: str, *, subrequest: bool = False) -> SalesforceApiError | None:
        """Consume the first armed fault matching this request (subrequests only match rules with a path)."""
        for rule in self.faults:
            if rule.path_contains is None and subrequest:
                continue
            if rule.path_contains is None or rule.path_contains in target:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.faults.remove(rule)
                fallback = "00Q8d00000001A2"
                return rule.error(target, self.seed_ids.get("lead_bob", fallback + checksum_suffix(fallback)))
        return None

    def new_cursor(self, records: list[dict[str, Any]]) -> str:
        """A query locator (key prefix 01g) for the rest of a large result."""
        cursor = self.ids.next("01g")
        self.cursors[cursor] = records
        return cursor
