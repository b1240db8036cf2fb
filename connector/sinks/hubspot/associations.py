"""The inline association an activity is created with, so a Call or Task lands on its contact in one request."""

from __future__ import annotations

from typing import Any

from connector.errors import PermanentError
from connector.sinks.base import ActionResult

ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("calls", "contacts"): 194,
    ("tasks", "contacts"): 204,
    ("notes", "contacts"): 202,
    ("meetings", "contacts"): 200,
    ("emails", "contacts"): 198,
}
"""HUBSPOT_DEFINED association type ids, activity → contact (associations guide)."""


def association(object_type: str, contact: ActionResult) -> dict[str, Any]:
    """The ``associations[]`` entry linking a new ``object_type`` record to the resolved contact."""
    target = contact.object or "contacts"
    type_id = ASSOCIATION_TYPE_IDS.get((object_type, target))
    if type_id is None:
        raise PermanentError(
            f"no HubSpot association type from {object_type} to {target}", code="UNSUPPORTED_ASSOCIATION"
        )
    return {
        "to": {"id": contact.crm_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }
