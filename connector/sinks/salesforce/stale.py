"""A write refused because the contact it was resolved to no longer exists in Salesforce (deleted, merged away).

Why: the engine caches a number's contact across events (and this sink for an hour), so without this every later
event of the number would be dead-lettered on the same dead id. ``StaleContact`` makes the engine forget the
contact and resolve the number again; the sink forgets it too (``ContactResolver.forget``).

Salesforce answers a PATCH of a deleted record 404 ``ENTITY_IS_DELETED`` (``NOT_FOUND`` once it left the recycle
bin), and a create whose ``WhoId`` names one ``INVALID_CROSS_REFERENCE_KEY`` or ``ENTITY_IS_DELETED`` with
``fields: ["WhoId"]`` [docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/
sforce_api_calls_concepts_core_data_objects.htm#statuscode].
"""

from __future__ import annotations

from connector.errors import PermanentError, SinkError, StaleContact
from connector.sinks.base import ActionResult
from connector.sinks.salesforce.records import Prepared

GONE = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})
WHO = "whoid"


def stale_contact(error: SinkError, prepared: Prepared, contact: ActionResult | None) -> StaleContact | None:
    """The StaleContact this refusal of ``prepared`` means, or None when it is about something else."""
    if not isinstance(error, PermanentError) or error.code not in GONE or contact is None or not contact.crm_id:
        return None
    updated = prepared.record_id is not None and prepared.record_id[:15] == contact.crm_id[:15]
    refused_who = any(
        WHO in (str(f).lower() for f in detail.get("fields") or [])
        for detail in error.details
        if detail.get("code") in GONE
    )
    if not (updated or (prepared.record_id is None and refused_who)):
        return None
    return StaleContact(
        f"the {contact.object or 'contact'} {contact.crm_id} no longer exists in Salesforce ({error.code})",
        status=error.status,
        code=error.code,
        crm_message=error.crm_message,
        details=error.details,
    )
