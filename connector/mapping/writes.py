"""Which CRM properties a mapping writes, on which object, and what kind of value: the input of
`connector crm-setup` (create what is missing) and of `connector validate` against the CRM schema."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.mapping.loader import LoadedMapping
from connector.mapping.schema import ContactValue

ValueKind = Literal["bool", "datetime", "date", "number", "string"]
_NO_VALUE = object()
"""A property the mapping names without a value of its own (idempotency keys, question targets)."""


@dataclass
class WrittenProperty:
    """One property a mapping writes, with every literal value it may write (for option checks)."""

    object: str
    name: str
    kind: ValueKind
    literals: set[Any] = field(default_factory=set)
    places: list[str] = field(default_factory=list)
    """YAML paths that write it (for messages)."""
    contact_objects: list[str] | None = None
    """For contact properties restricted to some objects (Lead `Status`)."""


_LAST_FILTER = re.compile(r"\|\s*([a-z_]+)(?:\([^|]*\))?\s*(?:or\s+[^|}]+)?\}\}\s*$")


def _kind(value: Any) -> ValueKind:
    """What kind of value a mapping entry produces, from a literal or a template's last filter."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if not (isinstance(value, str) and "{{" in value):
        return "string"
    last = _LAST_FILTER.search(value)
    filter_name = last.group(1) if last else None
    if filter_name in ("iso_utc", "epoch_ms", "iso_local"):
        return "datetime"
    if filter_name == "date_only" or value.replace(" ", "") == "{{task.local_date}}":
        return "date"
    if filter_name == "duration" and ("'ms'" in value or "'seconds'" in value):
        return "number"
    if "duration_ms" in value and filter_name is None:
        return "number"
    return "string"


def mapping_writes(mapping: LoadedMapping) -> list[WrittenProperty]:
    """Every (object, property) the mapping may write, merged across outcomes."""
    spec = mapping.spec
    found: dict[tuple[str, str], WrittenProperty] = {}

    def add(obj: str, name: str, value: Any, place: str, objects: list[str] | None = None) -> None:
        kind = "string" if value is _NO_VALUE else _kind(value)
        entry = found.setdefault((obj, name), WrittenProperty(obj, name, kind, contact_objects=objects))
        if entry.kind == "string" and kind != "string":
            entry.kind = kind
        if value is not _NO_VALUE and not (isinstance(value, str) and "{{" in value) and value is not None:
            entry.literals.add(value)
        entry.places.append(place)

    objects_of_contact = contact_objects(mapping)
    for name, value in spec.contact.create.items():
        add(spec.contact.create_object or spec.contact.object, name, value, f"contact.create.{name}")
    bundles = [(f"outcomes[{i}]", b) for i, b in enumerate(spec.outcomes)] + [("fallback", spec.fallback)]
    sections = [("contact_updates", spec.contact_updates)] + [(f"{p}.contact", b.contact) for p, b in bundles]
    sections += [(f"also[{i}].contact", a.contact) for i, a in enumerate(spec.also)]
    for base, values in sections:
        for name, declared in values.items():
            value = declared.value if isinstance(declared, ContactValue) else declared
            restricted = declared.objects if isinstance(declared, ContactValue) else None
            for obj in restricted or objects_of_contact:
                add(obj, name, value, f"{base}.{name}", restricted)
    for rule in spec.question_fields.map.values():
        for obj in objects_of_contact:
            add(obj, rule.property, _NO_VALUE, "question_fields.map")
    activity = spec.activity
    add(activity.object, activity.idempotency_property, _NO_VALUE, "activity.idempotency_property")
    for name, value in activity.properties.items():
        add(activity.object, name, value, f"activity.properties.{name}")
    for base, bundle_activity in [(f"{p}.activity", b.activity) for p, b in bundles]:
        for name, value in bundle_activity.items():
            add(activity.object, name, value, f"{base}.{name}")
    for task_name, task in spec.tasks.items():
        if task.idempotency_property:
            add(task.object, task.idempotency_property, _NO_VALUE, f"tasks.{task_name}.idempotency_property")
        for name, value in task.properties.items():
            add(task.object, name, value, f"tasks.{task_name}.properties.{name}")
    return sorted(found.values(), key=lambda p: (p.object, p.name))


TRANSFORM_KIND: dict[str, ValueKind] = {"string": "string", "as_is": "string", "number": "number", "bool": "bool"}
QUESTION_PLACE = "question_fields."
"""Prefix of a WrittenProperty place that a question rule (map or wildcard) names: the mapping asks for that field."""


def contact_objects(mapping: LoadedMapping) -> list[str]:
    """Every object the contact may resolve to (match rules and the created object)."""
    contact = mapping.spec.contact
    return sorted(
        {contact.object, contact.create_object or contact.object}
        | {o for rule in contact.match for o in (rule.objects or [])}
    )


def wanted_properties(mapping: LoadedMapping, question_names: Iterable[str] = ()) -> list[WrittenProperty]:
    """``mapping_writes`` plus what only the question section knows: the kind a question's ``transform`` gives
    its property, the values of its ``values`` table, and one wildcard property per question name seen.

    Both CRMs' set-up use it, so a question field a mapping names is created wherever the mapping points.
    """
    from connector.mapping.questions import property_name

    found = {(w.object, w.name): w for w in mapping_writes(mapping)}
    spec = mapping.spec.question_fields
    objects = contact_objects(mapping)
    for rule in spec.map.values():
        for obj in objects:
            entry = found[(obj, rule.property)]
            if entry.kind == "string":
                entry.kind = TRANSFORM_KIND[rule.transform or spec.transform]
            entry.literals.update(v for v in rule.values.values() if v is not None)
    if spec.wildcard:
        for question in sorted(set(question_names)):
            if question in spec.map:
                continue
            name = property_name(spec.wildcard, question, spec.name_style)
            for obj in objects:
                entry = found.setdefault((obj, name), WrittenProperty(obj, name, TRANSFORM_KIND[spec.transform]))
                entry.places.append(f"question_fields.wildcard ({question})")
    return sorted(found.values(), key=lambda p: (p.object, p.name))


def named_by_questions(written: WrittenProperty) -> bool:
    """The mapping's question section names this field (so set-up may create it, whatever its name)."""
    return any(place.startswith(QUESTION_PLACE) for place in written.places)
