"""The org's records: typed values per object, soft deletes, derived fields and all-or-none snapshots.

Records are keyed by the 15-char id (clients may send 15 or 18 chars). Derived fields follow the Object
Reference: Contact/Lead ``Name`` = first + last name; Task ``IsClosed`` from ``Status`` (and
``CompletedDateTime`` when it closes); the Who's (and What's) ``LastActivityDate`` becomes the most recent due
date of its closed tasks ("Due date of the most recent event logged against the record or the most recently
closed task" — Contact/Lead reference; a closed task without ``ActivityDate`` counts as today, UNVERIFIED).
Deleted records stay, flagged ``IsDeleted``, for ``queryAll``; every other read skips them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from connector.emulators.salesforce.errors import SalesforceApiError, not_found
from connector.emulators.salesforce.ids import IdGenerator, key15
from connector.emulators.salesforce.schema import CLOSED_TASK_STATUSES, USER_ID, ObjectDef, object_for_id
from connector.emulators.salesforce.validation import validate_write
from connector.emulators.salesforce.values import render


class Store:
    """All records of the emulated org. Not thread-safe by itself: the app serializes requests with a lock."""

    def __init__(self, schema: dict[str, ObjectDef], ids: IdGenerator, clock: Callable[[], datetime]) -> None:
        self.schema = schema
        self.ids = ids
        self.clock = clock
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in schema}
        self.write_guard: Callable[[ObjectDef, dict[str, Any], dict[str, Any] | None], None] | None = None
        self.duplicate_rules: dict[str, str] = {}
        """object (lower-case) → phone field: an active duplicate rule that BLOCKS a new record whose field holds
        the digits of an existing record's (``SalesforceEmulator.block_duplicates``)."""
        """Called with (object, validated values, current record or None) before a write: permission checks."""

    # --- lookups -----------------------------------------------------------------------------------------
    def object(self, name: str) -> ObjectDef | None:
        """An sObject type by name, any case."""
        return self.schema.get(name.lower())

    def get(self, obj: ObjectDef, record_id: str, *, include_deleted: bool = False) -> dict[str, Any] | None:
        """A record of this type by 15- or 18-char id; deleted ones only when asked."""
        key = key15(record_id)
        record = self.tables[obj.name.lower()].get(key) if key and record_id.startswith(obj.key_prefix) else None
        if record is None or (record["IsDeleted"] and not include_deleted):
            return None
        return record

    def find(self, record_id: str) -> tuple[ObjectDef, dict[str, Any]] | None:
        """Any live record by id, whatever its type."""
        obj = object_for_id(self.schema, record_id)
        record = self.get(obj, record_id) if obj else None
        return (obj, record) if obj and record else None

    def rows(self, obj: ObjectDef, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Records of a type in creation order."""
        return [r for r in self.tables[obj.name.lower()].values() if include_deleted or not r["IsDeleted"]]

    # --- writes ------------------------------------------------------------------------------------------
    def create(self, obj: ObjectDef, body: Any, raw: str | None = None) -> dict[str, Any]:
        """Validate and insert; returns the stored record."""
        values = validate_write(self, obj, body, raw)
        if self.write_guard is not None:
            self.write_guard(obj, values, None)
        self._check_duplicates(obj, values)
        return self.insert(obj, values)

    def _check_duplicates(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        """A blocking duplicate rule: Salesforce refuses the save with DUPLICATES_DETECTED and the rule's alert text
        (default "Use one of these records?") — https://help.salesforce.com/s/articleView?id=sf.duplicate_rules_map_of_reference.htm
        (the REST error body's exact shape here, statusCode + message + empty fields, is UNVERIFIED)."""
        field = self.duplicate_rules.get(obj.name.lower())
        wanted = re.sub(r"\D", "", str(values.get(field) or "")) if field else ""
        if not field or not wanted:
            return
        for row in self.rows(obj):
            if re.sub(r"\D", "", str(row.get(field) or ""))[-10:] == wanted[-10:]:
                raise SalesforceApiError(400, "DUPLICATES_DETECTED", "Use one of these records?", [])

    def insert(self, obj: ObjectDef, values: dict[str, Any], *, created: datetime | None = None) -> dict[str, Any]:
        """Insert already-typed values (seeding uses this directly with a past ``created``)."""
        now = created or self.clock()
        record: dict[str, Any] = {d.name: (d.default if d.type == "boolean" else None) for d in obj.fields.values()}
        if "OwnerId" in record:
            record["OwnerId"] = USER_ID
        record.update(values)
        record.update(
            Id=self.ids.next(obj.key_prefix),
            CreatedDate=now,
            LastModifiedDate=now,
            SystemModstamp=now,
            CreatedById=USER_ID,
            IsDeleted=False,
        )
        self._derive(obj, record, previous=None, now=now)
        self.tables[obj.name.lower()][record["Id"][:15]] = record
        self._touch_activity(obj, record)
        return record

    def update(self, obj: ObjectDef, record_id: str, body: Any, raw: str | None = None) -> dict[str, Any]:
        """Validate and apply a partial update (PATCH semantics)."""
        record = self.live(obj, record_id)
        values = validate_write(self, obj, body, raw, record_id=record_id)
        if self.write_guard is not None:
            self.write_guard(obj, values, record)
        previous = dict(record)
        now = self.clock()
        record.update(values)
        record.update(LastModifiedDate=now, SystemModstamp=now)
        self._derive(obj, record, previous=previous, now=now)
        self._touch_activity(obj, record)
        return record

    def delete(self, obj: ObjectDef, record_id: str) -> None:
        """Soft-delete (to the recycle bin): gone for reads, still visible to queryAll."""
        record = self.live(obj, record_id)
        if self.write_guard is not None:
            self.write_guard(obj, {}, record)
        now = self.clock()
        record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)

    def live(self, obj: ObjectDef, record_id: str) -> dict[str, Any]:
        """The live record, or 404 NOT_FOUND / ENTITY_IS_DELETED as Salesforce answers."""
        record = self.get(obj, record_id, include_deleted=True)
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise SalesforceApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return record

    # --- transactions ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """A copy to restore when an all-or-none request fails."""
        return copy.deepcopy(self.tables)

    def restore(self, snapshot: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Undo everything since ``snapshot``."""
        self.tables = snapshot

    # --- rendering ---------------------------------------------------------------------------------------
    def serialize(
        self, obj: ObjectDef, record: dict[str, Any], version: str, fields: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """A record as REST returns it: ``attributes`` first, then the fields asked for (all by default)."""
        out: dict[str, Any] = {
            "attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}
        }
        for name in fields if fields is not None else (d.name for d in obj.fields.values()):
            out[name] = render(record.get(name))
        return out

    # --- derived fields ----------------------------------------------------------------------------------
    def _derive(self, obj: ObjectDef, record: dict[str, Any], previous: dict[str, Any] | None, now: datetime) -> None:
        if "Name" in record and obj.name in ("Contact", "Lead"):
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or None
        if obj.name == "Task":
            closed = record.get("Status") in CLOSED_TASK_STATUSES
            was_closed = bool(previous and previous.get("IsClosed"))
            record["IsClosed"] = closed
            if closed and not was_closed:
                record["CompletedDateTime"] = now
            elif not closed:
                record["CompletedDateTime"] = None

    def _touch_activity(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        if obj.name != "Task" or not record.get("IsClosed"):
            return
        due = record.get("ActivityDate") or self.clock().date()
        for reference in (record.get("WhoId"), record.get("WhatId")):
            found = self.find(reference) if reference else None
            if found and "LastActivityDate" in found[1]:
                current = found[1].get("LastActivityDate")
                if current is None or due > current:
                    found[1]["LastActivityDate"] = due
