"""Which fields a template may read, and which templates fail for every call because they read one that is not.

`lint` warns about a read it does not know; `loader` refuses a template that fails on such a read for a complete
sample call (it would fail for every call: each would be dead-lettered with an UndefinedError).
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2.exceptions import UndefinedError
from pydantic import BaseModel

from connector.errors import ConfigProblem, MappingError
from connector.mapping.context import template_context
from connector.mapping.schema import Mapping
from connector.mapping.templates import CompiledValue, referenced_paths
from connector.payload import CallEvent, parse_webhook
from connector.sample import sample_payload

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


def is_known(path: str) -> bool:
    """Whether a dotted path (`record.phone.e164`) names something a template's context has (free maps such as
    `meta` and `question_fields` hold anything)."""
    tree: Any = _known_tree()
    for part in path.split("."):
        if tree == "*":
            return True
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def unknown_reads(values: dict[str, CompiledValue], environment: Any) -> list[tuple[CompiledValue, list[str]]]:
    """Each template that reads paths its context does not have, with those paths (sorted)."""
    found = []
    for compiled in values.values():
        if compiled.kind == "literal":
            continue
        unknown = sorted(u for u in referenced_paths(environment, compiled.text) if not is_known(u))
        if unknown:
            found.append((compiled, unknown))
    return found


def certain_failures(values: dict[str, CompiledValue], environment: Any, spec: Mapping) -> list[ConfigProblem]:
    """Templates that read a field the call does not have and fail on it for a sample call: errors, not warnings.

    A warning let `validate` say OK and `serve` start, then every call dead-lettered with "UndefinedError: 'dict
    object' has no attribute 'nmae'" (a worker also took such a mapping on reload). A template that guards the
    read (`| default(...)`, `is defined`, an `if`) renders for the sample and stays a warning."""
    context: dict[str, Any] | None = None
    problems = []
    for compiled, unknown in unknown_reads(values, environment):
        context = context or _sample_context(spec)
        failing = _failing_read(compiled, context, unknown)
        if failing:
            where = compiled.where
            place = f"{where.path} (line {where.line})" if where.line else where.path
            message = f"template reads `{failing}`, which is not a field of the call: every call fails"
            problems.append(ConfigProblem(place, message))
    return problems


FREE_MAPS = ("meta", "question_fields", "extra")
"""What the call's sender fills as it likes: a key one call has, the next may lack."""


def unguarded_free_reads(values: dict[str, CompiledValue], environment: Any, spec: Mapping) -> list[tuple[Any, str]]:
    """Templates that fail when a call lacks a `meta` / `question_fields` / `extra` key they read: (where, path).

    Such a template leaves its field out of that call (the planner's warning says so), or stops the call when the
    field cannot be left out; `validate` warns, so the fix (`| default('')`) comes before the first such call."""
    context: dict[str, Any] | None = None
    found = []
    for compiled in values.values():
        if compiled.kind == "literal":
            continue
        reads = sorted(p for p in referenced_paths(environment, compiled.text) if p.split(".")[0] in FREE_MAPS)
        if not reads:
            continue
        context = context or _sample_context(spec, **dict.fromkeys(FREE_MAPS, {}))
        failing = _failing_read(compiled, context, reads)
        if failing:
            found.append((compiled.where, failing))
    return found


def _sample_context(spec: Mapping, **emptied: Any) -> dict[str, Any]:
    """What templates see for a complete sample call (with the ``emptied`` fields replaced)."""
    event = parse_webhook(sample_payload("lint-sample"))
    if emptied:
        event = event.model_copy(update=emptied)
    return template_context(event, spec, spec.fallback, datetime.now(UTC), UTC)


def _failing_read(compiled: CompiledValue, context: dict[str, Any], paths: list[str]) -> str | None:
    """The first of ``paths`` the template fails on (Jinja's UndefinedError names it) for ``context``; None when it
    renders, or fails for another reason."""
    try:
        compiled.render(context)
    except MappingError as exc:
        cause = exc.__cause__
        if isinstance(cause, UndefinedError):
            return next((p for p in paths if _named_in(p, str(cause))), None)
    return None


def _named_in(path: str, message: str) -> bool:
    """Jinja names the part it could not find: `'recrod' is undefined`, `... has no attribute 'nmae'`."""
    return any(repr(part) in message for part in path.split("."))


@cache
def _known_tree() -> dict[str, Any]:
    return {**_model_tree(CallEvent), **_CONTEXT_EXTRAS}


def _model_tree(model: type[BaseModel]) -> dict[str, Any]:
    """Field names of a model, nested models expanded, free maps as wildcards."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
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
