"""The answers to a call's scripted questions as contact properties (`question_fields` in a mapping).

Each answer goes through its rule (a `values` table, then a `transform`) and is redacted like the notes; the
planner writes the result, the door-side priority asks `answer_sets` whether an opt-out question says yes, and
both CRMs' set-up name properties with `property_name`. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from connector.mapping.context import redaction_rules
from connector.mapping.filters import slug
from connector.mapping.loader import LoadedMapping
from connector.mapping.redaction import redact
from connector.mapping.schema import QuestionRule
from connector.payload import CallEvent


def question_values(event: CallEvent, mapping: LoadedMapping, warnings: list[str]) -> dict[str, Any]:
    """Contact property → converted answer, for the questions the mapping maps (by name or by its wildcard); an
    answer its transform cannot use, or a second question on the same property, is a plan warning instead."""
    spec = mapping.spec.question_fields
    rules = redaction_rules(mapping.spec)
    values: dict[str, Any] = {}
    for name, answer in event.question_fields.items():
        rule = spec.map.get(name)
        if rule is None and spec.wildcard is None:
            continue
        prop = rule.property if rule else property_name(spec.wildcard or "", name, spec.name_style)
        converted = _convert(answer, rule, spec.transform)
        if isinstance(converted, str) and rules:
            converted = redact(converted, rules)  # a card number said aloud is masked on the contact as in the notes
        if converted is UNUSABLE:
            warnings.append(f"question {name!r}: answer not usable as {(rule and rule.transform) or spec.transform}")
            continue
        if prop in values:
            warnings.append(f"question {name!r} maps to {prop}, already set by another question; kept the first")
            continue
        values[prop] = converted
    return values


UNUSABLE = object()
"""What `_convert` gives for an answer its transform cannot read ("maybe" as a bool)."""


def answer_sets(event: CallEvent, mapping: LoadedMapping, question: str) -> bool:
    """Whether the call's answer to ``question`` converts to true under its rule (an opt-out question)."""
    spec = mapping.spec.question_fields
    if question not in event.question_fields:
        return False
    return _convert(event.question_fields[question], spec.map.get(question), spec.transform) is True


def _convert(answer: Any, rule: QuestionRule | None, default_transform: str) -> Any:
    transform = (rule.transform if rule and rule.transform else None) or default_transform
    if rule and rule.values and isinstance(answer, str):
        lowered = {k.lower(): v for k, v in rule.values.items()}
        if answer.strip() in rule.values or answer.strip().lower() in lowered:
            return rule.values.get(answer.strip(), lowered.get(answer.strip().lower()))
    if isinstance(answer, (list, dict)):
        return "; ".join(map(str, answer)) if isinstance(answer, list) else json.dumps(answer, sort_keys=True)
    if transform == "as_is":
        return answer
    if transform == "number":
        try:
            number = float(str(answer).strip())
        except ValueError:
            return UNUSABLE
        return int(number) if number.is_integer() else number
    if transform == "bool":
        text = str(answer).strip().lower()
        return {
            "true": True,
            "yes": True,
            "y": True,
            "1": True,
            "false": False,
            "no": False,
            "n": False,
            "0": False,
        }.get(text, UNUSABLE)
    if answer is None:
        return ""
    if isinstance(answer, bool):
        return "true" if answer else "false"
    return str(answer)


@lru_cache(maxsize=4096)
def property_name(pattern: str, name: str, style: str) -> str:
    """`twox_q_{name}` with the question name made a valid property name for the CRM.

    A name with nothing left after sanitizing (e.g. all Cyrillic) gets a short hash, so two such
    questions never land on the same property. Cached: the same few questions come with every event of a campaign.
    """
    cleaned = slug(name, 30).strip("_")
    if not cleaned or (cleaned == "field" and name.strip().lower() != "field"):
        cleaned = "field_" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    if style == "salesforce":
        result = pattern.replace("{name}", cleaned)
        head, sep, tail = result.rpartition("__")
        head = "_".join(filter(None, head.split("_"))) if sep else "_".join(filter(None, result.split("_")))
        return f"{head}__{tail}" if sep else head
    return pattern.replace("{name}", slug(cleaned, 100 - len(pattern)))
