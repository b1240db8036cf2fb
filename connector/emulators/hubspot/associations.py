"""Associations v4 (https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide):

- ``PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`` → 200 BatchResponsePublicDefaultAssociation
- ``PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`` body ``[{associationCategory, associationTypeId}]``
  → 201 LabelsBetweenObjectPair (v4 ids are integers)
- ``GET /crm/v4/objects/{from}/{id}/associations/{to}`` → 200 ``{"results":[{"toObjectId","associationTypes"}]}``
- ``DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`` → 204
- ``POST /crm/v4/associations/{from}/{to}/batch/{create|associate/default|read|archive}``
Statuses from hubspot-api-client v12 ``crm/associations/v4/api/*.py``. A missing record on either end answers the
400 ``One or more associations are invalid`` with ``INVALID_OBJECT_IDS`` (observed for inline and v4 writes).
"""

from __future__ import annotations

from typing import Any

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.http import Call, Result, batch_inputs, batch_response, started_at
from connector.emulators.hubspot.schema import ObjectType
from connector.emulators.hubspot.store import Spec, Store

MAX_READ, MAX_CREATE = 1_000, 2_000


def _pair(call: Call, from_type: str, to_type: str) -> tuple[ObjectType, ObjectType]:
    return call.store.resolve(from_type), call.store.resolve(to_type)


def _labels(from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str) -> dict[str, Any]:
    """LabelsBetweenObjectPair: HUBSPOT_DEFINED default types carry no label."""
    return {
        "fromObjectTypeId": from_type.type_id,
        "fromObjectId": int(from_id),
        "toObjectTypeId": to_type.type_id,
        "toObjectId": int(to_id),
        "labels": [],
    }


def _default(store: Store, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str) -> list[dict]:
    """Write the default (unlabelled) association; results list both directions, as HubSpot's do."""
    store.require_pair(from_type, from_id, to_type, to_id)
    spec = store.default_spec(from_type, to_type)
    store.link(from_type.name, from_id, to_type.name, to_id, spec)
    reverse = store.default_spec(to_type, from_type)
    return [
        {
            "from": {"id": from_id},
            "to": {"id": to_id},
            "associationSpec": {"associationCategory": spec[0], "associationTypeId": spec[1]},
        },
        {
            "from": {"id": to_id},
            "to": {"id": from_id},
            "associationSpec": {"associationCategory": reverse[0], "associationTypeId": reverse[1]},
        },
    ]


def create_default(call: Call, from_type: str, from_id: str, to_type: str, to_id: str) -> Result:
    source, target = _pair(call, from_type, to_type)
    started = started_at()
    return batch_response(_default(call.store, source, from_id, target, to_id), [], started)


def _specs(store: Store, source: ObjectType, target: ObjectType, raw: Any) -> list[Spec]:
    if not isinstance(raw, list) or not raw:
        raise err.invalid_input("Cannot deserialize value of type `ArrayList<AssociationSpec>` (expected an array)")
    specs = []
    for spec in raw:
        store.check_spec(source, spec, target)
        specs.append((str(spec["associationCategory"]), int(spec["associationTypeId"])))
    return specs


def create_labelled(call: Call, from_type: str, from_id: str, to_type: str, to_id: str) -> Result:
    source, target = _pair(call, from_type, to_type)
    specs = _specs(call.store, source, target, call.json())
    call.store.require_pair(source, from_id, target, to_id)
    for spec in specs:
        call.store.link(source.name, from_id, target.name, to_id, spec)
    return 201, _labels(source, from_id, target, to_id)


def _association_types(specs: set[Spec]) -> list[dict[str, Any]]:
    return [{"category": category, "typeId": type_id, "label": None} for category, type_id in sorted(specs)]


def list_associations(call: Call, from_type: str, from_id: str, to_type: str) -> Result:
    """Paged by ``limit`` (≤ 500) and ``after`` (an offset here). A record that does not exist has no
    associations (UNVERIFIED: HubSpot may answer 404)."""
    source, target = _pair(call, from_type, to_type)
    limit = call.int_arg("limit", 500, 500)
    after = call.request.args.get("after") or "0"
    offset = int(after) if after.isdigit() else 0
    found = list(call.store.targets(source.name, from_id, target.name).items())
    body: dict[str, Any] = {
        "results": [
            {"toObjectId": int(to_id), "associationTypes": _association_types(specs)}
            for to_id, specs in found[offset : offset + limit]
        ],
    }
    if offset + limit < len(found):
        body["paging"] = {"next": {"after": str(offset + limit)}}
    return 200, body


def delete_association(call: Call, from_type: str, from_id: str, to_type: str, to_id: str) -> Result:
    source, target = _pair(call, from_type, to_type)
    call.store.unlink(source.name, from_id, target.name, to_id)
    return 204, None


def _object_id(value: Any) -> str:
    if not isinstance(value, dict) or value.get("id") in (None, ""):
        raise err.missing_fields(["id"])
    return str(value["id"])


def batch(call: Call, from_type: str, to_type: str, operation: str) -> Result:
    source, target = _pair(call, from_type, to_type)
    body = call.object_body()
    started = started_at()
    store = call.store
    if operation == "create":
        inputs = batch_inputs(body, MAX_CREATE)
        planned = [
            (_object_id(i.get("from")), _object_id(i.get("to")), _specs(store, source, target, i.get("types")))
            for i in inputs
        ]
        for from_id, to_id, _ in planned:
            store.require_pair(source, from_id, target, to_id)
        results = []
        for from_id, to_id, specs in planned:
            for spec in specs:
                store.link(source.name, from_id, target.name, to_id, spec)
            results.append(_labels(source, from_id, target, to_id))
        return batch_response(results, [], started, 201)
    if operation == "associate/default":
        inputs = batch_inputs(body, MAX_CREATE)
        pairs = [(_object_id(i.get("from")), _object_id(i.get("to"))) for i in inputs]
        for from_id, to_id in pairs:
            store.require_pair(source, from_id, target, to_id)
        results = [row for from_id, to_id in pairs for row in _default(store, source, from_id, target, to_id)]
        return batch_response(results, [], started)
    if operation == "read":
        inputs = batch_inputs(body, MAX_READ)
        results = []
        for item in inputs:
            from_id = _object_id(item)
            found = store.targets(source.name, from_id, target.name)
            if found:
                results.append(
                    {
                        "from": {"id": from_id},
                        "to": [
                            {"toObjectId": int(to_id), "associationTypes": _association_types(specs)}
                            for to_id, specs in found.items()
                        ],
                    }
                )
        return batch_response(results, [], started)
    if operation == "archive":
        for item in batch_inputs(body, MAX_CREATE):
            from_id = _object_id(item.get("from"))
            for to in item.get("to") or []:
                store.unlink(source.name, from_id, target.name, _object_id(to))
        return 204, None
    raise err.not_found()
