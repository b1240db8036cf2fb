"""Checks on a create/update body, in the order and with the texts Salesforce uses.

Order: deserialization (unknown field ``INVALID_FIELD`` "No such column 'X' on sobject of type T" — observed
verbatim in client fixtures — and ``JSON_PARSER_ERROR`` for wrong value types, first offending key wins), then
``INVALID_FIELD_FOR_INSERT_UPDATE`` for read-only fields, ``REQUIRED_FIELD_MISSING`` ("Required fields are
missing: [LastName, Company]", fields listed), ``STRING_TOO_LONG`` ("<Label>: data value too large: <value>
(max length=N)", observed with field labels), ``NUMBER_OUTSIDE_VALID_RANGE`` ("<Label>: value outside of valid
range on numeric field: <value>", observed),
``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`` ("<Label>: bad value
for restricted picklist field: X", observed) and lookups: a malformed id → ``MALFORMED_ID``, an id of the wrong
object → ``FIELD_INTEGRITY_EXCEPTION`` "Name ID: id value of incorrect type: 006…" (observed for Task.WhoId),
a well-formed id of no live record → ``INVALID_CROSS_REFERENCE_KEY`` "invalid cross reference id".
"""

from __future__ import annotations

from typing import Any, Protocol

from connector.emulators.salesforce.errors import SalesforceApiError, json_parser_error
from connector.emulators.salesforce.ids import key15, to18
from connector.emulators.salesforce.schema import USER_ID, ObjectDef, object_for_id
from connector.emulators.salesforce.values import coerce, jackson_token

NUMERIC_RANGE = {"int": 10**9 - 1, "double": 10**18 - 1}
"""Largest magnitude per type: describe says ``digits: 9`` for int and ``precision: 18, scale: 0`` for double here."""
# Observed text of the REST create error when the body carries an Id (UNVERIFIED for updates).
MSG_ID_IN_BODY = "The Id field should not be specified in the sobject data."
_READ_ONLY_HINT = (
    "Please check the security settings of this field and verify that it is read/write for your "
    "profile or permission set."
)


def deserialize(obj: ObjectDef, body: Any, raw: str | None, *, record_id: str | None = None) -> dict[str, Any]:
    """Known fields with typed values, or the deserializer's error (first offending key wins)."""
    creating = record_id is None
    if not isinstance(body, dict):
        token, text = jackson_token(body)
        raise json_parser_error(
            f"Cannot deserialize instance of {obj.name.lower()} from {token} value {text} or "
            "request may be missing a required field at [line:1, column:1]"
        )
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key == "attributes" and isinstance(value, dict):
            continue
        definition = obj.field(key)
        if definition is None:
            raise SalesforceApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
        if definition.name == "Id":
            if creating or key15(value) != key15(record_id):
                raise SalesforceApiError(400, "INVALID_FIELD", MSG_ID_IN_BODY)
            continue
        coerced = coerce(definition, value, raw, key)
        if coerced is None and definition.type == "boolean":
            coerced = False  # UNVERIFIED: null for a (non-nillable) checkbox is stored as false
        values[definition.name] = coerced
    return values


class Records(Protocol):
    """What a lookup check reads of the org's records (the store, which calls `validate_write`, is one)."""

    schema: dict[str, ObjectDef]

    def get(self, obj: ObjectDef, record_id: str, *, include_deleted: bool = False) -> dict[str, Any] | None: ...


def validate_write(
    store: Records, obj: ObjectDef, body: Any, raw: str | None, *, record_id: str | None = None
) -> dict[str, Any]:
    """The typed values to write (canonical field names); ``record_id`` set means an update."""
    creating = record_id is None
    values = deserialize(obj, body, raw, record_id=record_id)

    blocked = [
        name
        for name in values
        if not (obj.fields[name.lower()].createable if creating else obj.fields[name.lower()].updateable)
    ]
    if blocked:
        raise SalesforceApiError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(blocked)}. {_READ_ONLY_HINT}",
            blocked,
        )

    if creating:
        for definition in obj.fields.values():
            if definition.createable and definition.defaulted and definition.name not in values:
                values[definition.name] = USER_ID if definition.name == "OwnerId" else definition.default
    missing = [
        d.name
        for d in obj.fields.values()
        if not d.nillable
        and (d.createable if creating else d.updateable)
        and (values.get(d.name) is None if creating else (d.name in values and values[d.name] is None))
    ]
    if missing:
        raise SalesforceApiError(
            400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
        )

    for name, value in values.items():
        definition = obj.fields[name.lower()]
        if isinstance(value, str) and definition.length and len(value) > definition.length:
            raise SalesforceApiError(
                400,
                "STRING_TOO_LONG",
                f"{definition.label}: data value too large: {value} (max length={definition.length})",
                [name],
            )
        if (
            definition.type in NUMERIC_RANGE
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and abs(value) > NUMERIC_RANGE[definition.type]
        ):
            # Observed: "NUMBER_OUTSIDE_VALID_RANGE:Normalized Score: value outside of valid range on numeric field:
            # 100.0" (https://dfc-org-production.force.com/forums/ForumsMain?id=9060G000000BfsuQAC); the range is the
            # describe's digits (int) or precision - scale (double), as this emulator's describe reports them.
            raise SalesforceApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{definition.label}: value outside of valid range on numeric field: {value}",
                [name],
            )
        if definition.restricted and value is not None and value not in definition.picklist:
            raise SalesforceApiError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{definition.label}: bad value for restricted picklist field: {value}",
                [name],
            )
        if definition.type == "reference" and value is not None:
            values[name] = _check_reference(store, obj, name, value)
    return values


def _check_reference(store: Records, obj: ObjectDef, name: str, value: str) -> str:
    """The 18-char id of a valid lookup value, or the error Salesforce gives for it."""
    definition = obj.fields[name.lower()]
    incorrect = f"{definition.label}: id value of incorrect type: {value}"
    if key15(value) is None:
        raise SalesforceApiError(400, "MALFORMED_ID", incorrect, [name])
    if definition.reference_to == ("User",):
        if not value.startswith("005"):
            raise SalesforceApiError(400, "FIELD_INTEGRITY_EXCEPTION", incorrect, [name])
        if key15(value) != key15(USER_ID):
            raise SalesforceApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
        return to18(value)
    target = object_for_id(store.schema, value)
    if target is None or target.name not in definition.reference_to:
        raise SalesforceApiError(400, "FIELD_INTEGRITY_EXCEPTION", incorrect, [name])
    if store.get(target, value) is None:
        raise SalesforceApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
    return to18(value)
