"""Properties API: ``/crm/v3/properties/{type}`` (list, read, create, archive, batch read/create) and property
groups, as the properties guide describes them
(https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide).

Create requires ``groupName``, ``name``, ``label``, ``type`` and ``fieldType`` with a valid type/fieldType pair;
an existing name answers 409 (category ``OBJECT_ALREADY_EXISTS``; its text is UNVERIFIED).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.http import Call, Result, batch_error, batch_inputs, batch_response, started_at
from connector.emulators.hubspot.schema import BOOL_OPTIONS, FIELD_TYPES, ObjectType, group
from connector.emulators.hubspot.store import Store
from connector.emulators.hubspot.validation import format_instant, now

# Internal names: lower-case letters, digits and underscores, starting with a letter (UNVERIFIED exact rule).
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REQUIRED = ("groupName", "name", "label", "type", "fieldType")


def list_properties(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    archived = call.flag("archived")
    results = [copy.deepcopy(p) for p in call.store.properties[otype.name].values() if p["archived"] == archived]
    return 200, {"results": results}


def get_property(call: Call, object_type: str, name: str) -> Result:
    otype = call.store.resolve(object_type)
    return 200, copy.deepcopy(_existing(call.store, otype, name))


def _existing(store: Store, otype: ObjectType, name: str) -> dict[str, Any]:
    definition = store.properties[otype.name].get(name)
    if definition is None or definition["archived"]:
        raise err.fail(404, f"Unable to find property {name} on object type {otype.type_id}", "OBJECT_NOT_FOUND")
    return definition


def create_property(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    return 201, copy.deepcopy(add_property(call.store, otype, call.object_body()))


def add_property(store: Store, otype: ObjectType, body: Any) -> dict[str, Any]:
    """Validate a PropertyCreate body and store it; the stored definition is returned."""
    if not isinstance(body, dict):
        raise err.missing_fields(list(_REQUIRED))
    missing = [field for field in _REQUIRED if not body.get(field)]
    if missing:
        raise err.missing_fields(missing)
    name, type_, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
    if type_ not in FIELD_TYPES:
        raise err.invalid_input(f'Cannot deserialize value of type `PropertyType` from String "{type_}"')
    if field_type not in FIELD_TYPES[type_]:
        allowed = ", ".join(sorted(FIELD_TYPES[type_]))
        raise err.validation(
            f"Invalid fieldType {field_type} for property type {type_}; expected one of: {allowed}",
            context={"fieldType": [field_type]},
        )
    if not _NAME.fullmatch(name):
        raise err.validation(
            f"Property name {name} is invalid: use lower-case letters, numbers and underscores, starting with a letter",
            context={"name": [name]},
        )
    if body["groupName"] not in store.groups[otype.name]:
        raise err.validation(f"Property group {body['groupName']} does not exist for object type {otype.type_id}")
    existing = store.properties[otype.name].get(name)
    if existing is not None and not existing["archived"]:
        raise err.fail(
            409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS", context={"name": [name]}
        )
    raw_options = body.get("options") or []
    if not isinstance(raw_options, list) or any(not isinstance(o, dict) or "value" not in o for o in raw_options):
        raise err.missing_fields(["options[].label", "options[].value"])
    if type_ == "bool" and not raw_options:
        raw_options = [{"label": label, "value": value} for label, value in BOOL_OPTIONS]
    stamp = format_instant(now())
    definition = {
        "updatedAt": stamp,
        "createdAt": stamp,
        "name": name,
        "label": str(body["label"]),
        "type": type_,
        "fieldType": field_type,
        "description": str(body.get("description") or ""),
        "groupName": str(body["groupName"]),
        "options": [
            {
                "label": str(o.get("label", o["value"])),
                "value": str(o["value"]),
                "displayOrder": int(o.get("displayOrder", index)),
                "hidden": bool(o.get("hidden", False)),
                "description": str(o.get("description") or ""),
            }
            for index, o in enumerate(raw_options)
        ],
        "displayOrder": int(body.get("displayOrder", -1)),
        "calculated": False,
        "externalOptions": bool(body.get("externalOptions", False)),
        "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
        "hidden": bool(body.get("hidden", False)),
        "hubspotDefined": False,
        "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
        "formField": bool(body.get("formField", False)),
        "archived": False,
        "createdUserId": "1000001",
        "updatedUserId": "1000001",
    }
    store.properties[otype.name][name] = definition
    return definition


def archive_property(call: Call, object_type: str, name: str) -> Result:
    otype = call.store.resolve(object_type)
    definition = _existing(call.store, otype, name)
    if definition["hubspotDefined"]:
        raise err.validation(f"Property {name} is HubSpot-defined and cannot be archived")
    definition["archived"] = True
    definition["archivedAt"] = format_instant(now())
    return 204, None


def batch_properties(call: Call, object_type: str, operation: str) -> Result:
    otype = call.store.resolve(object_type)
    body = call.object_body()
    started = started_at()
    if operation == "read":
        inputs = batch_inputs(body, 100)
        found, missing = [], []
        for item in inputs:
            name = str(item.get("name", "")) if isinstance(item, dict) else ""
            definition = call.store.properties[otype.name].get(name)
            if definition is None or definition["archived"] != bool(body.get("archived", False)):
                missing.append(name)
            else:
                found.append(copy.deepcopy(definition))
        errors = (
            [
                batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not find properties {missing} on {otype.type_id}",
                    {"properties": missing},
                )
            ]
            if missing
            else []
        )
        return batch_response(found, errors, started)
    if operation == "create":
        # "Create a batch of properties using the same rules as when creating an individual property"
        # (https://developers.hubspot.com/docs/api-reference/legacy/crm/properties/batch/create-properties). Up to
        # 100 inputs like the object batch endpoints (UNVERIFIED for properties). One invalid or existing input
        # fails the request and none is created (UNVERIFIED: HubSpot does not document partial creates here).
        inputs = batch_inputs(body, 100)
        before = dict(call.store.properties[otype.name])
        try:
            created = [copy.deepcopy(add_property(call.store, otype, item)) for item in inputs]
        except err.HubSpotError:
            call.store.properties[otype.name] = before
            raise
        return batch_response(created, [], started, 201)
    raise err.not_found()


def list_groups(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    return 200, {"results": [dict(g) for g in call.store.groups[otype.name].values() if not g["archived"]]}


def get_group(call: Call, object_type: str, group_name: str) -> Result:
    otype = call.store.resolve(object_type)
    found = call.store.groups[otype.name].get(group_name)
    if found is None or found["archived"]:
        raise err.fail(
            404, f"Unable to find property group {group_name} on object type {otype.type_id}", "OBJECT_NOT_FOUND"
        )
    return 200, dict(found)


def create_group(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    body = call.object_body()
    missing = [field for field in ("name", "label") if not body.get(field)]
    if missing:
        raise err.missing_fields(missing)
    name = str(body["name"])
    if name in call.store.groups[otype.name]:
        raise err.fail(
            409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS", context={"name": [name]}
        )
    created = group(name, str(body["label"]), int(body.get("displayOrder", -1)))
    call.store.groups[otype.name][name] = created
    return 201, dict(created)
