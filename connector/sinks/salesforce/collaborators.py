"""The parts of the Salesforce sink that its batched paths (``batch``, ``callbacks``, ``resolve``) work with.

Why: those modules used to receive the sink object and call back into it, so ``sink`` and they imported each other
and any sink member could be reached from anywhere. They get this frozen bundle instead, built once by the sink:
the API client, the field types, the contact resolver, the tracker of writes whose outcome is unknown
(``connector.sinks.uncertain``), the drift policy, and ``execute_one``, the sink's single-write path (an item the
batch cannot handle takes it, and reports its own error). None of them imports ``sink``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from simple_salesforce.format import format_soql

from connector.errors import OutcomeUnknown
from connector.plan import Action
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import DriftPolicy
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.contacts import ContactResolver
from connector.sinks.salesforce.errors import identifier
from connector.sinks.salesforce.fields import FieldTypes
from connector.sinks.salesforce.records import Prepared, Write, prepare_write
from connector.sinks.uncertain import UncertainWrites

T = TypeVar("T")
ExecuteOne = Callable[[Action, ExecutionContext], ActionResult]
"""One action through the single (Composite, looked-up) path; raises its SinkError."""
FOUND_MAX = 200
"""Rows one idempotency-key lookup returns (callers ask for at most 100 keys at a time)."""


@dataclass(frozen=True)
class Collaborators:
    """What a batched path may use: no engine-facing sink method, no way back into the sink but ``execute_one``."""

    name: str
    """The sink's name, for log records."""
    connection: SalesforceConnection
    types: FieldTypes
    contacts: ContactResolver
    uncertain: UncertainWrites
    drift: DriftPolicy
    execute_one: ExecuteOne

    def prepare(self, action: Action, contact: ActionResult | None) -> Prepared | ActionResult:
        """``records.prepare_write`` with this sink's field types."""
        return prepare_write(self.types, action, contact)

    def guarded(self, keys: Iterable[str], write: Callable[[], T]) -> T:
        """Run a write; when its outcome is unknown, mark the keys so the next attempt looks them up first."""
        try:
            return write()
        except OutcomeUnknown:
            self.uncertain.mark(keys)
            raise

    def collection(
        self, method: str, records: list[dict[str, Any]], keys: list[str], *, where: str
    ) -> list[dict[str, Any]]:
        """``POST``/``PATCH composite/sobjects`` with ``allOrNone: false``: one SaveResult per record, in order.

        ``keys``: the creates among the records; they become uncertain when the answer is lost (or unreadable,
        since a 200 means the records were saved), so the next attempt looks them up before writing again.
        """
        payload = {"allOrNone": False, "records": records}

        def send() -> list[dict[str, Any]]:
            answer = self.connection.call(
                lambda sf: sf.restful("composite/sobjects", method=method, json=payload), where=where
            )
            if (
                not isinstance(answer, list)
                or len(answer) != len(records)
                or not all(isinstance(a, dict) for a in answer)
            ):
                raise OutcomeUnknown(f"Salesforce answered {where} without one result per record")
            return answer

        return self.guarded(keys, send)

    def find_written(self, actions: Sequence[Write]) -> dict[str, ActionResult]:
        """Records already written for these creates, by idempotency key (one SOQL per object and field)."""
        found: dict[str, ActionResult] = {}
        groups: dict[tuple[str, str], list[Write]] = {}
        for action in actions:
            if action.idempotency_property:
                key = (identifier(action.object, "object"), identifier(action.idempotency_property, "field"))
                groups.setdefault(key, []).append(action)
        for (sobject, field), group in groups.items():
            soql = format_soql(
                "SELECT Id, {field:literal} FROM {sobject:literal} WHERE {field:literal} IN {keys} "
                "ORDER BY CreatedDate LIMIT {limit}",
                field=field,
                sobject=sobject,
                keys=[a.idempotency_key for a in group],
                limit=FOUND_MAX,
            )
            answer = self.connection.call(lambda sf, q=soql: sf.query(q), where=f"query {sobject}")  # type: ignore[misc]
            for record in (answer or {}).get("records") or []:
                for action in group:
                    if record.get(field) == action.idempotency_key and action.key not in found:
                        found[action.key] = ActionResult(
                            crm_id=str(record["Id"]), object=sobject, detail={"found_by": field}
                        )
        return found
