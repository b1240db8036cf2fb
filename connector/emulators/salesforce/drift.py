"""Schema drift in the emulated org: a field deleted after set-up, and created again.

Why: the connector must keep landing events when an admin deletes one of its custom fields. Deleting a custom
field removes it from describe and from every record, and a later REST write naming it gets ``400 INVALID_FIELD``
"No such column 'X' on sobject of type T" (the deserializer's error, ``salesforce.validation.deserialize``;
REST error shape: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
Re-creating it (crm-setup, or Setup) gives a field with no values, defaults for checkboxes. Salesforce keeps a
deleted field's data restorable for 15 days; the emulator does not model undelete.
"""

from __future__ import annotations

from connector.emulators.salesforce.org import Org
from connector.emulators.salesforce.schema import FieldDef


def delete_field(org: Org, sobject: str, field: str) -> FieldDef:
    """Remove a field from the object's schema and from its records; returns its definition."""
    with org.lock:
        obj = org.store.object(sobject)
        if obj is None or obj.field(field) is None:
            raise KeyError(f"no field {sobject}.{field}")
        definition = obj.fields.pop(field.lower())
        for record in org.store.rows(obj, include_deleted=True):
            record.pop(definition.name, None)
        return definition


def add_field(org: Org, sobject: str, definition: FieldDef) -> None:
    """(Re)create a field: every record gets its default (False for a checkbox, else null)."""
    with org.lock:
        obj = org.store.object(sobject)
        if obj is None:
            raise KeyError(f"unknown sObject type {sobject!r}")
        obj.add(definition)
        for record in org.store.rows(obj, include_deleted=True):
            record.setdefault(definition.name, definition.default if definition.type == "boolean" else None)
