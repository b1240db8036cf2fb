"""The emulator's state: records, property definitions, groups and associations, behind one lock.

Writes keep a short history of what the search index has seen, so ``search_lag_s`` can hide a record from search
(HubSpot's index is eventually consistent: "newly created or updated objects may take a few moments to appear",
search guide) while reads by id see it at once.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.schema import (
    ASSOCIATION_TYPES,
    OBJECT_TYPES,
    REVERSE_TYPE,
    TYPE_BY_ID,
    ObjectType,
    resolve_type,
)
from connector.emulators.hubspot.validation import check_properties, format_instant, now, phone_key

_TAGS = re.compile(r"<[^>]+>")
Spec = tuple[str, int]  # (associationCategory, associationTypeId)
_NOT_EMULATED = frozenset(
    {
        "companies",
        "company",
        "0-2",
        "deals",
        "deal",
        "0-3",
        "tickets",
        "ticket",
        "0-5",
        "notes",
        "note",
        "0-46",
        "meetings",
        "meeting",
        "0-47",
        "emails",
        "email",
        "0-49",
    }
)


@dataclass
class Record:
    """One CRM object. ``properties`` holds only set values (strings)."""

    id: str
    type: ObjectType
    properties: dict[str, str]
    created: datetime
    updated: datetime
    archived: bool = False
    archived_at: datetime | None = None
    # (monotonic time of the write, properties as written): what the search index catches up with.
    index: list[tuple[float, dict[str, str]]] = field(default_factory=list)


class Store:
    """All mutable state. Callers hold ``lock`` for a whole request so each request is atomic."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.records: dict[str, dict[str, Record]] = {name: {} for name in OBJECT_TYPES}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECT_TYPES}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECT_TYPES}
        # (from type, from id, to type) → {to id: {specs}}
        self.links: dict[tuple[str, str, str], dict[str, set[Spec]]] = {}

    # -- records --------------------------------------------------------------------------------

    def lookup(self, otype: ObjectType, raw_id: str, id_property: str | None = None) -> Record:
        """A live record by id, or by a unique property (``?idProperty=email``); 404 otherwise."""
        if id_property and id_property != "hs_object_id":
            found = self.find_unique(otype, id_property, raw_id)
            if found is None:
                raise err.not_found()
            return found
        record = self.records[otype.name].get(raw_id)
        if record is None or record.archived:
            raise err.not_found(raw_id)
        return record

    def find_unique(self, otype: ObjectType, name: str, value: str, *, exclude: str | None = None) -> Record | None:
        definition = self.properties[otype.name].get(name)
        if definition is None or not definition.get("hasUniqueValue"):
            raise err.validation(
                f"Unable to perform update/upsert by non-unique {otype.type_id} property {name} in portal ID 20000001"
            )  # observed wording for a non-unique idProperty
        wanted = value.casefold() if name == "email" else value
        for record in self.records[otype.name].values():
            stored = record.properties.get(name)
            if record.archived or record.id == exclude or stored is None:
                continue
            if (stored.casefold() if name == "email" else stored) == wanted:
                return record
        return None

    def create(self, otype: ObjectType, raw_properties: Any, raw_associations: Any = None) -> Record:
        return self.commit_create(otype, *self.prepare_create(otype, raw_properties, raw_associations))

    def prepare_create(self, otype: ObjectType, raw_properties: Any, raw_associations: Any) -> tuple[dict, list]:
        """Every check of a create, writing nothing (batch create validates all inputs before writing any)."""
        values = check_properties(self.properties[otype.name], raw_properties, creating=True)
        missing = [name for name in otype.required if not values.get(name)]
        if missing:
            raise err.required_missing(otype.label, missing)
        self._check_unique(otype, values, None)
        return values, self.parse_inline_associations(otype, raw_associations)

    def commit_create(self, otype: ObjectType, values: dict[str, Any], links: list[tuple[str, str, Spec]]) -> Record:
        self._check_unique(otype, values, None)  # again: an earlier input of the same batch may hold the value
        stamp = now()
        record = Record(str(next(self._ids)), otype, {}, stamp, stamp)
        self.records[otype.name][record.id] = record
        self._write(record, values, stamp, created=True)
        for to_type, to_id, spec in links:
            self.link(otype.name, record.id, to_type, to_id, spec)
        return record

    def update(self, record: Record, raw_properties: Any) -> Record:
        values = check_properties(self.properties[record.type.name], raw_properties, creating=False)
        self._check_unique(record.type, values, record.id)
        self._write(record, values, now(), created=False)
        return record

    def archive(self, record: Record) -> None:
        record.archived = True
        record.archived_at = record.updated = now()

    def seed(self, otype: ObjectType, properties: dict[str, str], created: datetime) -> Record:
        """A record created at ``created`` that the search index has always known (no search lag)."""
        record = self.create(otype, properties)
        record.created = record.updated = created
        record.properties[otype.created] = record.properties[otype.modified] = format_instant(created)
        record.index = [(float("-inf"), dict(record.properties))]
        return record

    def _check_unique(self, otype: ObjectType, values: dict[str, str | None], self_id: str | None) -> None:
        for name, value in values.items():
            definition = self.properties[otype.name][name]
            if value is None or not definition.get("hasUniqueValue"):
                continue
            other = self.find_unique(otype, name, value, exclude=self_id)
            if other is None:
                continue
            if name == "email":
                raise err.contact_exists(other.id)
            # UNVERIFIED wording for a custom unique property.
            raise err.fail(
                409, f"A {otype.singular} with {name} = {value} already exists. Existing ID: {other.id}", "CONFLICT"
            )

    def _write(self, record: Record, values: dict[str, str | None], stamp: datetime, *, created: bool) -> None:
        props = record.properties
        for name, value in values.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        otype = record.type
        props["hs_object_id"] = record.id
        if created and otype.created not in props:
            props[otype.created] = format_instant(stamp)
        props[otype.modified] = format_instant(stamp)
        if otype.name == "contacts":
            _derive(props, "phone", "hs_searchable_calculated_phone_number", phone_key)
            _derive(props, "mobilephone", "hs_searchable_calculated_mobile_number", phone_key)
            _derive(props, "email", "hs_email_domain", lambda email: email.rpartition("@")[2].lower())
        else:
            body = "hs_call_body" if otype.name == "calls" else "hs_task_body"
            _derive(props, body, "hs_body_preview", lambda html: " ".join(_TAGS.sub(" ", html).split())[:1000])
            if otype.name == "tasks" and props.get("hs_task_status") == "COMPLETED":
                props.setdefault("hs_task_completion_date", format_instant(stamp))
        record.updated = stamp
        record.index.append((time.monotonic(), dict(props)))
        del record.index[:-8]

    def indexed(self, otype: ObjectType, lag_s: float) -> list[tuple[Record, dict[str, str]]]:
        """What search sees now: each live record as of its newest write at least ``lag_s`` old."""
        horizon = time.monotonic() - lag_s
        visible = []
        for record in self.records[otype.name].values():
            if record.archived:
                continue  # archived objects never appear in search (search guide)
            snapshot = next((props for stamp, props in reversed(record.index) if stamp <= horizon), None)
            if snapshot is not None:
                visible.append((record, snapshot))
        return visible

    # -- views ----------------------------------------------------------------------------------

    def view(
        self,
        record: Record,
        names: list[str] | None,
        *,
        associations: list[ObjectType] | None = None,
        props: dict[str, str] | None = None,
        everything: bool = False,
    ) -> dict[str, Any]:
        """``SimplePublicObject``: the requested properties (a defined-but-unset one as null, an undefined one
        left out) plus the always-returned ones; the type's defaults when none were requested; every stored
        property when ``everything`` (create and update responses)."""
        stored = record.properties if props is None else props
        definitions = self.properties[record.type.name]
        if everything:
            shown: dict[str, Any] = dict(stored)
        else:
            wanted = names if names else list(record.type.default_properties)
            shown = {n: stored.get(n) for n in dict.fromkeys([*wanted, *record.type.always]) if n in definitions}
        body: dict[str, Any] = {
            "id": record.id,
            "properties": {key: shown[key] for key in sorted(shown)},
            "createdAt": format_instant(record.created),
            "updatedAt": format_instant(record.updated),
            "archived": record.archived,
        }
        if record.archived and record.archived_at is not None:
            body["archivedAt"] = format_instant(record.archived_at)
        linked = {}
        for to_type in associations or []:
            results = [
                {"id": to_id, "type": TYPE_BY_ID[spec[1]][2]}
                for to_id, specs in self.targets(record.type.name, record.id, to_type.name).items()
                for spec in sorted(specs)
            ]
            if results:
                linked[to_type.name] = {"results": results}
        if linked:
            body["associations"] = linked
        return body

    # -- associations ---------------------------------------------------------------------------

    def parse_inline_associations(self, otype: ObjectType, raw: Any) -> list[tuple[str, str, Spec]]:
        """Validate ``associations`` of a create body; nothing is written until every one is valid."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise err.invalid_input("Cannot deserialize `associations`: expected an array")
        links: list[tuple[str, str, Spec]] = []
        for item in raw:
            to = item.get("to") if isinstance(item, dict) else None
            types = item.get("types") if isinstance(item, dict) else None
            if not isinstance(to, dict) or to.get("id") in (None, "") or not isinstance(types, list) or not types:
                raise err.missing_fields(["to", "types"])
            to_id = str(to["id"])
            for spec in types:
                to_type = self.check_spec(otype, spec)
                if not self._exists(to_type, to_id):
                    raise err.associations_invalid({"INVALID_OBJECT_IDS": [f"{to_type.label}={to_id} is not valid"]})
                links.append((to_type.name, to_id, (spec["associationCategory"], int(spec["associationTypeId"]))))
        return links

    def check_spec(self, from_type: ObjectType, spec: Any, to_type: ObjectType | None = None) -> ObjectType:
        """The target type of an association spec, or the 400 HubSpot gives for an unusable spec."""
        if not isinstance(spec, dict) or "associationTypeId" not in spec or "associationCategory" not in spec:
            raise err.missing_fields(["associationCategory", "associationTypeId"])
        category, type_id = str(spec["associationCategory"]), spec["associationTypeId"]
        known = TYPE_BY_ID.get(int(type_id)) if str(type_id).isdigit() else None
        label = f"{category}={type_id}"
        if known is None or category != "HUBSPOT_DEFINED":
            raise err.associations_invalid(
                {
                    "associationSpec": [label],
                    "INVALID_ASSOCIATION_TYPE_ID": [f"{label} is not a valid association definition id"],
                }
            )
        source, target = OBJECT_TYPES[known[0]], OBJECT_TYPES[known[1]]
        if source is not from_type or (to_type is not None and target is not to_type):
            # Observed form for a type id used from the wrong side (secondhand capture).
            raise err.validation(
                f"invalid from object type {from_type.type_id} for associations to be created. "
                f"expected: {source.type_id}"
            )
        return target

    def _exists(self, otype: ObjectType, raw_id: str) -> bool:
        record = self.records[otype.name].get(raw_id)
        return record is not None and not record.archived

    def require_pair(self, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str) -> None:
        """Both ends must exist (v4 writes); the same 400 as an invalid inline association."""
        bad = [
            f"{t.label}={i} is not valid" for t, i in ((from_type, from_id), (to_type, to_id)) if not self._exists(t, i)
        ]
        if bad:
            raise err.associations_invalid({"INVALID_OBJECT_IDS": bad})

    def link(self, from_type: str, from_id: str, to_type: str, to_id: str, spec: Spec) -> None:
        """Associations are stored in both directions with the reverse type id (194 ↔ 193)."""
        self.links.setdefault((from_type, from_id, to_type), {}).setdefault(to_id, set()).add(spec)
        reverse = (spec[0], REVERSE_TYPE.get(spec[1], spec[1]))
        self.links.setdefault((to_type, to_id, from_type), {}).setdefault(from_id, set()).add(reverse)

    def unlink(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.links.get((from_type, from_id, to_type), {}).pop(to_id, None)
        self.links.get((to_type, to_id, from_type), {}).pop(from_id, None)

    def targets(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[Spec]]:
        """Live associated records, ordered by id."""
        found = self.links.get((from_type, from_id, to_type), {})
        live = {to_id: specs for to_id, specs in found.items() if specs and self._exists(OBJECT_TYPES[to_type], to_id)}
        return dict(sorted(live.items(), key=lambda item: int(item[0])))

    @staticmethod
    def default_spec(from_type: ObjectType, to_type: ObjectType) -> Spec:
        specs = ASSOCIATION_TYPES.get((from_type.name, to_type.name))
        if not specs:
            raise err.validation(f"No default association type exists from {from_type.type_id} to {to_type.type_id}")
        return specs[0][0], specs[0][1]

    # -- inspection -----------------------------------------------------------------------------

    def snapshot(self, record: Record) -> dict[str, Any]:
        """A record as tests see it: every stored property and all its associations by type."""
        linked = {
            to_type: list(self.targets(record.type.name, record.id, to_type))
            for (from_type, from_id, to_type) in self.links
            if from_type == record.type.name and from_id == record.id
        }
        return {
            "id": record.id,
            "properties": copy.deepcopy(record.properties),
            "createdAt": format_instant(record.created),
            "updatedAt": format_instant(record.updated),
            "archived": record.archived,
            "associations": {key: ids for key, ids in linked.items() if ids},
        }

    @staticmethod
    def resolve(raw: str) -> ObjectType:
        """An object type path segment, or a 400: HubSpot's text for a name it cannot infer (UNVERIFIED status), and
        a plain statement for real HubSpot types this emulator does not serve."""
        otype = resolve_type(raw)
        if otype is None:
            if raw.lower() in _NOT_EMULATED:
                raise err.validation(f"The HubSpot emulator does not serve {raw}; it serves contacts, calls and tasks")
            raise err.validation(f"Unable to infer object type from: {raw}")
        return otype


def _derive(props: dict[str, str], source: str, target: str, compute: Any) -> None:
    value = props.get(source)
    if value:
        props[target] = compute(value)
    else:
        props.pop(target, None)
