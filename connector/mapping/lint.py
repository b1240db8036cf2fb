"""Warnings about a mapping that is valid but probably not what sales ops meant.

Errors stop a mapping from loading (loader.py); these only warn: an outcome 2X documents that no
bundle handles, a do-not-call that another bundle could shadow, a template reading a field the
payload does not have.
"""

from __future__ import annotations

import itertools
from typing import Any

from connector.mapping.conditions import holds
from connector.mapping.loader import LoadedMapping
from connector.mapping.reads import unguarded_free_reads, unknown_reads
from connector.mapping.schema import BundleSpec, ContactValue
from connector.payload import EndReason, FailureReason


def lint(mapping: LoadedMapping) -> list[str]:
    """Every warning for a loaded mapping, each naming its place."""
    return (
        _uncovered_outcomes(mapping)
        + _shadowed_do_not_call(mapping)
        + _unreachable_outcomes(mapping)
        + _unknown_template_paths(mapping)
        + _unguarded_reads(mapping)
    )


def _first_match(mapping: LoadedMapping, facts: dict[str, Any]) -> BundleSpec:
    return next((b for b in mapping.spec.outcomes if holds(b.when, facts)), mapping.spec.fallback)


def _combinations() -> list[dict[str, Any]]:
    return [
        {"end_reason": e.value, "failure_reason": f, "answered": a, "message_left": m, "workflow_end": w}
        for e, f, a, m, w in itertools.product(
            EndReason, [None, *[x.value for x in FailureReason]], [True, False], [True, False], [True, False]
        )
    ]


UNDOCUMENTED_END_REASON = "an_end_reason_2x_adds_later"
"""Stands for every end_reason 2X does not document: an outcome without an end_reason condition may catch them."""


def _unreachable_outcomes(mapping: LoadedMapping) -> list[str]:
    """Outcomes no call can reach: an earlier one matches every call they would (first match wins)."""
    combinations = _combinations()
    first = combinations[0]["end_reason"]
    combinations += [
        {**facts, "end_reason": UNDOCUMENTED_END_REASON} for facts in combinations if facts["end_reason"] == first
    ]
    reached = {id(_first_match(mapping, facts)) for facts in combinations}
    warnings = []
    for index, bundle in enumerate(mapping.spec.outcomes):
        if id(bundle) in reached:
            continue
        instead = sorted({_first_match(mapping, f).name for f in combinations if holds(bundle.when, f)})
        warnings.append(
            f"{mapping.source}: outcome {bundle.name} (outcomes[{index}]) can never be chosen: every call it matches"
            f" goes to {', '.join(instead) or 'an earlier outcome'} first (the first match wins; move it up or"
            " narrow the earlier one)"
        )
    return warnings


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
    return [
        f"{compiled.where}: template reads `{used}`, which is not a field of the call"
        for compiled, unknown in unknown_reads(mapping.values, mapping.environment)
        for used in unknown
    ]


def _unguarded_reads(mapping: LoadedMapping) -> list[str]:
    return [
        f"{where}: template reads `{path}` unguarded: a call without that key leaves this field out"
        f" (use `{path} | default('')`)"
        for where, path in unguarded_free_reads(mapping.values, mapping.environment, mapping.spec)
    ]
