"""Record bodies for one write, shared by the single Composite path and sObject Collections.

Why one place: both paths must send exactly the same values (fitted to the describe's limits, coerced to the
field types), so a batched write and its one-at-a-time retry never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.errors import PermanentError
from connector.plan import Action, CreateActivity, CreateTask, UpdateContact
from connector.sinks.base import ActionResult
from connector.sinks.drift import SKIPPED, skipped_detail
from connector.sinks.salesforce.errors import identifier, record_id
from connector.sinks.salesforce.fields import FieldTypes

Write = CreateActivity | CreateTask
"""The actions that create a record carrying an idempotency key."""


@dataclass(frozen=True)
class Prepared:
    """One record write, ready for a Composite subrequest or an sObject Collections record."""

    sobject: str
    record_id: str | None
    """None: a create."""
    body: dict[str, Any]
    """Field values, fitted to their fields' limits and coerced to their describe types."""
    fitted: dict[str, Any] = field(default_factory=dict)
    """Names of the fields cut, clamped or left out to fit (``Fitted.detail``), for the audit trail."""


def prepare_write(types: FieldTypes, action: Action, contact: ActionResult | None) -> Prepared | ActionResult:
    """The sObject, record id (updates) and coerced body one action writes; or its result when there is nothing
    to write.

    Raises PermanentError when the action cannot be written at all (bad identifier, no contact to update).
    Field types must be known (``types.ensure``) for the values to be coerced.
    """
    if isinstance(action, Write):
        sobject = identifier(action.object, "object")
        body = dict(action.properties)
        keep = []
        if action.idempotency_property:
            keep.append(identifier(action.idempotency_property, "field"))
            body[keep[0]] = action.idempotency_key
        if action.associate_with_contact and contact is not None and contact.crm_id:
            body.setdefault("WhoId", contact.crm_id)
        fit = types.fit_body(sobject, body, keep=keep)  # fitting: every value fits its field
        return Prepared(sobject, None, fit.values, fit.detail())
    if isinstance(action, UpdateContact):
        if contact is None or not contact.crm_id or not contact.object:
            raise PermanentError("update_contact has no resolved contact to update", code="NO_CONTACT")
        sobject = identifier(action.object or contact.object, "object")
        # The engine already drops fields meant for the other object (Lead Status on a Contact); so does this,
        # because sending one is INVALID_FIELD and would roll the whole composite back.
        fields = {
            identifier(f.property, "field"): f.value
            for f in action.fields
            if not f.objects or sobject.lower() in (o.lower() for o in f.objects)
        }
        if not fields:
            return ActionResult(
                crm_id=contact.crm_id, object=sobject, skipped=True, detail={"reason": "no_fields_for_object"}
            )
        fit = types.fit_body(sobject, fields)  # fitting: every value fits its field
        return Prepared(sobject, record_id(contact.crm_id), fit.values, fit.detail())
    raise PermanentError(f"the Salesforce sink cannot execute {action.kind!r} actions", code="UNSUPPORTED_ACTION")


def with_fit(result: ActionResult, fitted: dict[str, Any] | None) -> ActionResult:
    """The result with the names of the fields that were cut, clamped or left out to fit (audit trail); fields
    left out join those the CRM refused, if any."""
    if not fitted:
        return result
    rest = {k: v for k, v in fitted.items() if k != SKIPPED}
    detail = skipped_detail({**result.detail, **rest}, fitted.get(SKIPPED) or {})
    return result.model_copy(update={"detail": detail})
