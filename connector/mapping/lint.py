"""Warnings about a mapping that is valid but probably not what sales ops meant.

Errors stop a mapping from loading (loader.py); these only warn: an outcome 2X documents that no
bundle handles, a do-not-call that another bundle could shadow, a template reading a field the
payload does not have.
"""

from __future__ import annotations

import itertools
import types
import typing
from typing import Any

from pydantic import BaseModel

from connector.errors import ConfigProblem
from connector.mapping.conditions import holds
from connector.mapping.loader import LoadedMapping
from connector.mapping.schema import BundleSpec, ContactValue
from connector.mapping.templates import referenced_paths
from connector.payload import CallEvent, EndReason, FailureReason

_CONTEXT_EXTRAS = {
    "event": "*",
    "call_time": "*",
    "call_time_local": "*",
    "tz": "*",
    "transcript_text": "*",
    "answers_text": "*",
    "outcome": {"name": "*", "label": "*", "rank": "*", "end_reason": "*", "failure_reason": "*"},
    "constants": "*",
    "callback": "*",
    "task": "*",
}


def lint(mapping: LoadedMapping) -> list[str]:
    """Every warning for a loaded mapping, each naming its place."""
    return _uncovered_outcomes(mapping) + _shadowed_do_not_call(mapping) + _unknown_template_paths(mapping)


def _first_match(mapping: LoadedMapping, facts: dict[str, Any]) -> BundleSpec:
    return next((b for b in mapping.spec.outcomes if holds(b.when, facts)), mapping.spec.fallback)


def _combinations() -> list[dict[str, Any]]:
    return [
        {"end_reason": e.value, "failure_reason": f, "answered": a, "message_left": m, "workflow_end": w}
        for e, f, a, m, w in itertools.product(
            EndReason, [None, *[x.value for x in FailureReason]], [True, False], [True, False], [True, False]
        )
    ]


def _uncovered_outcomes(mapping: LoadedMapping) -> list[str]:
    warnings = []
    named_end = {v for b in mapping.spec.outcomes if b.when for v in (b.when.end_reason or [])}
    named_failure = {v for b in mapping.spec.outcomes if b.when for v in (b.when.failure_reason or [])}
    for reason in EndReason:
        if reason.value not in named_end:
            warnings.append(
                f"{mapping.source}: no outcome names end_reason {reason.value}; such calls use the fallback"
            )
    if "any" not in named_failure:
        for reason in FailureReason:
            if reason.value not in named_failure:
                warnings.append(f"{mapping.source}: no outcome names failure_reason {reason.value}")
    return warnings


def _shadowed_do_not_call(mapping: LoadedMapping) -> list[str]:
    dnc = set(mapping.spec.precedence.do_not_call_properties)
    if not dnc:
        return [f"{mapping.source}: precedence.do_not_call_properties is empty: do-not-call will not be sticky"]
    warnings = set()
    for facts in _combinations():
        if facts["end_reason"] != EndReason.DO_NOT_CALL:
            continue
        bundle = _first_match(mapping, facts)
        sets = {p for p, v in bundle.contact.items() if (v.value if isinstance(v, ContactValue) else v) is True}
        if not sets & dnc:
            condition = ", ".join(f"{k}={v}" for k, v in facts.items() if v is not None)
            warnings.add(
                f"{mapping.source}: a do_not_call call ({condition}) uses outcome {bundle.name}, "
                "which does not set do-not-call"
            )
    return sorted(warnings)[:5]


def _unknown_template_paths(mapping: LoadedMapping) -> list[str]:
    known = {**_model_tree(CallEvent), **_CONTEXT_EXTRAS}
    warnings = []
    for compiled in mapping.values.values():
        if compiled.kind == "literal":
            continue
        for used in sorted(referenced_paths(mapping.environment, compiled.text)):
            if not _is_known(used.split("."), known):
                warnings.append(f"{compiled.where}: template reads `{used}`, which is not a field of the call")
    return warnings


def certain_failures(mapping: LoadedMapping) -> list[ConfigProblem]:
    """Templates that read a field the call does not have and fail on it for a sample call: errors, not warnings.

    A warning let `validate` say OK and `serve` start, then every call dead-lettered with "UndefinedError: 'dict
    object' has no attribute 'nmae'" (a worker also took such a mapping on reload). A template that guards the
    read (`| default(...)`, `is defined`, an `if`) renders for the sample and stays a warning."""
    from jinja2.exceptions import UndefinedError

    from connector.errors import MappingError

    known = {**_model_tree(CallEvent), **_CONTEXT_EXTRAS}
    context: dict[str, Any] | None = None
    problems = []
    for compiled in mapping.values.values():
        if compiled.kind == "literal":
            continue
        unknown = [
            u for u in referenced_paths(mapping.environment, compiled.text) if not _is_known(u.split("."), known)
        ]
        if not unknown:
            continue
        context = context if context is not None else _sample_context(mapping)
        try:
            compiled.render(context)
        except MappingError as exc:
            cause = exc.__cause__
            for used in sorted(unknown):
                if isinstance(cause, UndefinedError) and any(repr(part) in str(cause) for part in used.split(".")):
                    where = compiled.where
                    place = f"{where.path} (line {where.line})" if where.line else where.path
                    problems.append(
                        ConfigProblem(
                            place, f"template reads `{used}`, which is not a field of the call: every call fails"
                        )
                    )
                    break
    return problems


def _sample_context(mapping: LoadedMapping) -> dict[str, Any]:
    """What templates see for a complete sample call, planned with the fallback outcome."""
    from datetime import UTC, datetime

    from connector.mapping.planner import template_context
    from connector.payload import parse_webhook
    from connector.sample import sample_payload

    event = parse_webhook(sample_payload("lint-sample"))
    return template_context(event, mapping, mapping.spec.fallback, datetime.now(UTC), UTC)


def _is_known(parts: list[str], tree: Any) -> bool:
    for part in parts:
        if tree == "*":
            return True
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def _model_tree(model: type[BaseModel]) -> dict[str, Any]:
    """Field names of a model, nested models expanded, free maps as wildcards."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = _nested_model(annotation)
        tree[name] = _model_tree(nested) if nested else "*"
    return tree


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for member in typing.get_args(annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member
    return None
