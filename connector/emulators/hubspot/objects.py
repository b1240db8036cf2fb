"""CRM object endpoints: ``/crm/v3/objects/{type}`` create/read/update/archive/list, batch and search.

Statuses are the ones hubspot-api-client v12 maps to models (``response_types_map`` in
``hubspot/crm/{contacts,objects/calls,objects/tasks}/api/*.py``): create 201, read/update 200, archive 204,
batch create 201, batch read/update/upsert 200 or 207, batch archive 204, search 200. Any other 2xx makes the SDK
silently return None, so they matter.
"""

from __future__ import annotations

from typing import Any

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.http import (
    Call,
    Result,
    batch_error,
    batch_inputs,
    batch_response,
    started_at,
)
from connector.emulators.hubspot.schema import ObjectType, resolve_type
from connector.emulators.hubspot.search import search
from connector.emulators.hubspot.store import Record
from connector.emulators.hubspot.validation import check_properties

MAX_BATCH = 100


def _associations(call: Call) -> list[ObjectType]:
    """``?associations=contacts``; types this emulator does not serve (companies, deals…) have none to show."""
    found = [resolve_type(name) for name in call.query_list("associations") or []]
    return [otype for otype in found if otype is not None]


def create(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    body = call.object_body()
    record = call.store.create(otype, body.get("properties"), body.get("associations"))
    return 201, call.store.view(record, None, everything=True)


def get(call: Call, object_type: str, object_id: str) -> Result:
    """``?properties=a,b&associations=contacts&archived=false&idProperty=email``."""
    otype = call.store.resolve(object_type)
    if call.flag("archived"):
        record = call.store.records[otype.name].get(object_id)
        if record is None or not record.archived:
            raise err.not_found(object_id)
    else:
        record = call.store.lookup(otype, object_id, call.request.args.get("idProperty"))
    return 200, call.store.view(record, call.query_list("properties"), associations=_associations(call))


def update(call: Call, object_type: str, object_id: str) -> Result:
    """PATCH: only the properties sent change; ``""`` clears one (contacts guide)."""
    otype = call.store.resolve(object_type)
    record = call.store.lookup(otype, object_id, call.request.args.get("idProperty"))
    body = call.object_body()
    if "properties" not in body:
        raise err.missing_fields(["properties"])
    call.store.update(record, body["properties"])
    return 200, call.store.view(record, None, everything=True)


def archive(call: Call, object_type: str, object_id: str) -> Result:
    """DELETE moves the record to the recycling bin (archived). Archiving an id that does not exist also answers
    204 here (UNVERIFIED; HubSpot's batch archive is documented as idempotent)."""
    otype = call.store.resolve(object_type)
    record = call.store.records[otype.name].get(object_id)
    if record is not None and not record.archived:
        call.store.archive(record)
    return 204, None


def page(call: Call, object_type: str) -> Result:
    """GET list: ``limit`` (≤ 100), ``after`` (the next id, a cursor), ``properties``, ``associations``."""
    otype = call.store.resolve(object_type)
    limit = call.int_arg("limit", 10, 100)
    after = call.request.args.get("after") or "0"
    if not after.isdigit():
        raise err.validation(f"Invalid after cursor: {after}")
    archived = call.flag("archived")
    records = sorted(
        (r for r in call.store.records[otype.name].values() if r.archived == archived and int(r.id) >= int(after)),
        key=lambda r: int(r.id),
    )
    names, linked = call.query_list("properties"), _associations(call)
    body: dict[str, Any] = {
        "results": [call.store.view(r, names, associations=linked) for r in records[:limit]],
    }
    if len(records) > limit:
        next_id = records[limit].id
        body["paging"] = {"next": {"after": next_id, "link": f"{call.request.path}?after={next_id}"}}
    return 200, body


def do_search(call: Call, object_type: str) -> Result:
    otype = call.store.resolve(object_type)
    return 200, search(call.store, otype, call.json(), call.search_lag_s)


def batch(call: Call, object_type: str, operation: str) -> Result:
    otype = call.store.resolve(object_type)
    handler = {
        "create": _batch_create,
        "read": _batch_read,
        "update": _batch_update,
        "archive": _batch_archive,
        "upsert": _batch_upsert,
    }.get(operation)
    if handler is None:
        raise err.not_found()
    body = call.object_body()
    return handler(call, otype, body, batch_inputs(body, MAX_BATCH))


def _missing(otype: ObjectType, ids: list[str]) -> dict[str, Any]:
    message = f"Could not get some {otype.label} objects, they may be deleted or not exist. Check that ids are valid."
    return batch_error("OBJECT_NOT_FOUND", message, {"ids": ids})


def _batch_create(call: Call, otype: ObjectType, body: dict[str, Any], inputs: list[Any]) -> Result:
    """All inputs are validated before any is written: one invalid input fails the batch with a 400. A contact
    whose email an earlier input of the same batch took gets the 409 after the earlier ones were written."""
    started = started_at()
    prepared = []
    for item in inputs:
        if not isinstance(item, dict):
            raise err.missing_fields(["properties"])
        prepared.append(call.store.prepare_create(otype, item.get("properties"), item.get("associations")))
    records = [call.store.commit_create(otype, values, links) for values, links in prepared]
    return batch_response([call.store.view(r, None, everything=True) for r in records], [], started, 201)


def _batch_read(call: Call, otype: ObjectType, body: dict[str, Any], inputs: list[Any]) -> Result:
    started = started_at()
    names = body.get("properties") or None
    id_property = body.get("idProperty")
    found: list[Record] = []
    missing: list[str] = []
    for item in inputs:
        raw_id = str(item.get("id", "")) if isinstance(item, dict) else ""
        try:
            found.append(call.store.lookup(otype, raw_id, id_property))
        except err.HubSpotError as exc:
            if exc.status != 404:
                raise
            missing.append(raw_id)
    errors = [_missing(otype, missing)] if missing else []
    return batch_response([call.store.view(r, names) for r in found], errors, started)


def _batch_update(call: Call, otype: ObjectType, body: dict[str, Any], inputs: list[Any]) -> Result:
    """Unknown ids are reported in a 207 and the others updated; invalid values fail the whole batch (400)."""
    started = started_at()
    ids = [str(item.get("id", "")) if isinstance(item, dict) else "" for item in inputs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        # Observed wording for repeated ids in one batch.
        raise err.validation(f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique")
    targets: list[tuple[Record, Any]] = []
    missing: list[str] = []
    for item, raw_id in zip(inputs, ids, strict=True):
        try:
            record = call.store.lookup(otype, raw_id, item.get("idProperty"))
        except err.HubSpotError as exc:
            if exc.status != 404:
                raise
            missing.append(raw_id)
            continue
        check_properties(call.store.properties[otype.name], item.get("properties"), creating=False)
        targets.append((record, item.get("properties")))
    for record, properties in targets:
        call.store.update(record, properties)
    errors = [_missing(otype, missing)] if missing else []
    return batch_response([call.store.view(r, None, everything=True) for r, _ in targets], errors, started)


def _batch_archive(call: Call, otype: ObjectType, body: dict[str, Any], inputs: list[Any]) -> Result:
    for item in inputs:
        record = call.store.records[otype.name].get(str(item.get("id", "")) if isinstance(item, dict) else "")
        if record is not None and not record.archived:
            call.store.archive(record)
    return 204, None


def _batch_upsert(call: Call, otype: ObjectType, body: dict[str, Any], inputs: list[Any]) -> Result:
    """Create or update by a unique ``idProperty`` (email for contacts, or a custom unique property)."""
    started = started_at()
    results = []
    for item in inputs:
        if not isinstance(item, dict) or not item.get("idProperty") or item.get("id") in (None, ""):
            raise err.missing_fields(["id", "idProperty"])
        name, value = item["idProperty"], str(item["id"])
        existing = call.store.find_unique(otype, name, value)
        properties = dict(item.get("properties") or {})
        if existing is None:
            record = call.store.create(otype, {**properties, name: value})
        else:
            record = call.store.update(existing, properties)
        results.append({**call.store.view(record, None, everything=True), "new": existing is None})
    return batch_response(results, [], started)
