"""Schema drift: the CRM refuses a write because a field no longer exists (deleted after set-up) or is not writable.

Why this exists: one deleted custom field used to cost the whole event — the contact update (do-not-call, wrong
number) and the callback Task that followed — and every later event the same way. A sink now learns the refused
fields from the CRM's *structured* error (``SinkError.details``: Salesforce's ``errorCode``/``fields``/message,
HubSpot's ``errors[].code`` and ``errors[].context.propertyName``), sends the rest again in the same delivery, and
reports what it left out in ``ActionResult.detail["skipped_fields"]`` (field → the CRM's code). The engine does not
record those as written (so a replay after ``crm-setup`` fills them, precedence intact) and keeps a per-sink warning.

The same shape serves a stale schema: a value refused as too large (``SIZE_CODES``) for a field the sink's cached
schema did not list, or listed with another limit (created or shortened while the connector runs), makes the sink
forget that object's schema, fit the write to a fresh one and send it again once, in the same delivery.

Two cases never skip silently and raise ``MissingFields`` (the engine pauses the sink, nothing is dead-lettered):
a *protected* field — the do-not-call field (any ``sticky_true`` field), an idempotency property, the Task's WhoId —
and any field when the sink is configured ``on_missing_field: hold``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connector.errors import MissingFields, PermanentError, SinkError
from connector.hints import command
from connector.plan import Action, CreateActivity, CreateTask, UpdateContact

SKIPPED = "skipped_fields"
"""ActionResult.detail key: {field: CRM code} the CRM refused and the sink left out of the write."""

DRIFT_CODES = frozenset(
    {
        # Salesforce: an unknown field is INVALID_FIELD "No such column 'X' on sobject of type T" (REST error array,
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm); a field the user
        # may not write (field-level security, read-only) is INVALID_FIELD_FOR_INSERT_UPDATE with ``fields``.
        # NO_SUCH_COLUMN: named in the issue report; not found as an errorCode in Salesforce's docs (UNVERIFIED).
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "NO_SUCH_COLUMN",
        # HubSpot: errors[].code with context.propertyName (observed bodies, see emulators/hubspot/validation.py):
        # the property was deleted (archived), became calculated, or lost the enumeration option the mapping writes.
        "PROPERTY_DOESNT_EXIST",
        "READ_ONLY_VALUE",
    }
)
WRONG_TYPE = "WRONG_TYPE"
"""The code a sink gives a value it left out because it cannot be of the field's type (see VALUE_CODES)."""
VALUE_CODES = frozenset(
    {
        # Refusals of one value, not of the field: a question's answer ("next Tuesday") in a date property must cost
        # that property, not the call's do-not-call and log (a 400 for the whole write did). Codes with evidence in
        # connector/emulators/hubspot/validation.py (HubSpot: errors[].context.propertyName) and
        # connector/emulators/salesforce/validation.py (Salesforce: the error's `fields`).
        "INVALID_OPTION",
        "INVALID_LONG",
        "INVALID_DATE",
        "INVALID_INTEGER",
        "INVALID_EMAIL",
        "LEADING_TRAILING_WHITESPACE",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        # Salesforce's JSON deserializer names no field for a value of the wrong type (JSON_PARSER_ERROR): the sink
        # checks each value against the field's describe type first and leaves out what cannot be one (fields.py).
        "WRONG_TYPE",
    }
)
"""Skipped like drift; the operator's warning words them as refused values, not missing fields."""
REFUSAL_CODES = DRIFT_CODES | VALUE_CODES
SIZE_CODES = frozenset(
    {
        # Salesforce: a value longer than a text field is STRING_TOO_LONG (API 15.0 and later refuse instead of
        # truncating: https://developer.salesforce.com/docs/platform/api/guide/sforce-api-header-allowfieldtruncation.md),
        # in the REST error array that names "the field or object where the error occurred" (``fields``,
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm); the message
        # "<Label>: data value too large: <value> (max length=N)" is observed, not documented. A number beyond the
        # field's precision is NUMBER_OUTSIDE_VALID_RANGE with ``fields`` (observed, see fields.py).
        "STRING_TOO_LONG",
        "NUMBER_OUTSIDE_VALID_RANGE",
    }
)
"""Codes that refuse a value for its size: a fit to the CRM's current schema may cure them."""
_NO_SUCH_COLUMN = re.compile(r"No such column '([A-Za-z0-9_]+)' on (?:sobject|entity) of type '?([A-Za-z0-9_]+)")
_UNABLE_TO_WRITE = re.compile(r"Unable to create/update fields: ([A-Za-z0-9_, ]+)\.")
_HUBSPOT_PROPERTY = re.compile(r'Property \\?"([A-Za-z0-9_]+)\\?" does not exist')
T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    """One field the CRM refused: its name as the CRM spelled it, the code, and the object when the CRM said."""

    field: str
    code: str
    sobject: str | None = None


def refusals(error: BaseException, codes: frozenset[str] = REFUSAL_CODES) -> list[Refusal] | None:
    """Every field the error refuses as missing/not writable or its value as one the field cannot take (with
    ``codes=SIZE_CODES``: as too large); None when any part of it is something else (a bad id, an outage): then the
    write fails as a whole."""
    if not isinstance(error, PermanentError):
        return None
    items = error.details or [{"code": error.code, "message": error.crm_message or "", "fields": []}]
    found: list[Refusal] = []
    for item in items:
        code = str(item.get("code") or "")
        if code not in codes:
            return None
        message = str(item.get("message") or "")
        names = [str(f) for f in item.get("fields") or []]
        sobject = None
        if match := _NO_SUCH_COLUMN.search(message):
            names, sobject = names or [match.group(1)], match.group(2)
        elif not names and (match := _UNABLE_TO_WRITE.search(message)):
            names = [n.strip() for n in match.group(1).split(",") if n.strip()]
        elif not names:
            names = _HUBSPOT_PROPERTY.findall(message)
        if not names:
            return None  # e.g. INVALID_FIELD "The Id field should not be specified": not a missing field
        found += [Refusal(name, code, sobject) for name in names]
    return found or None


def refused_in(found: list[Refusal] | None, sent: Iterable[str], sobject: str) -> dict[str, str]:
    """The fields of one record's body (``sent``, any case) that ``found`` refuses: {name as sent: code}."""
    names = {n.lower(): n for n in sent}
    refused: dict[str, str] = {}
    for refusal in found or []:
        if refusal.sobject is not None and refusal.sobject.lower() != sobject.lower():
            continue
        name = names.get(refusal.field.lower())
        if name is not None:
            refused.setdefault(name, refusal.code)
    return refused


def protected_fields(action: Action) -> set[str]:
    """Fields of an action that must never be skipped: losing them loses a promise, not a detail."""
    if isinstance(action, UpdateContact):
        return {f.property for f in action.fields if f.rule == "sticky_true"}  # do-not-call
    if isinstance(action, (CreateActivity, CreateTask)):
        return {name for name in (action.idempotency_property, "WhoId") if name}
    return set()


@dataclass(frozen=True)
class DriftPolicy:
    """A sink's answer to refused fields: skip them (default) or hold (pause the sink)."""

    sink: str
    hold: bool = False
    held: dict[str, set[str]] = field(default_factory=dict)
    """Fields that paused the sink, by object: its credentials probe checks they exist before it resumes."""

    def check(self, sobject: str, refused: dict[str, str], protected: set[str]) -> None:
        """Raise MissingFields when a refused field must not be skipped (or the sink holds on any)."""
        must = refused if self.hold else {f: c for f, c in refused.items() if f in protected}
        if not must:
            return
        self.held.setdefault(sobject, set()).update(must)
        fields = {f"{sobject}.{name}": code for name, code in sorted(must.items())}
        why = "on_missing_field: hold" if self.hold else "a do-not-call or idempotency field is never skipped"
        raise MissingFields(
            f"{missing_message(self.sink, fields)} ({why})", fields=fields, code=next(iter(must.values()))
        )


def probe_held(policy: DriftPolicy, lacking: Callable[[str, set[str]], set[str]]) -> None:
    """Before a paused sink resumes: raise MissingFields while the CRM still lacks a field that paused it.

    ``lacking(object, names)`` asks the CRM (describe, property read) which of ``names`` it still lacks.
    """
    still = {
        f"{obj}.{name}": "MISSING"
        for obj, names in sorted(policy.held.items())
        for name in sorted(lacking(obj, set(names)))
    }
    if still:
        raise MissingFields(missing_message(policy.sink, still), fields=still)
    policy.held.clear()


def missing_message(sink: str, fields: Iterable[str]) -> str:
    """The operator's warning: which fields, and the command that creates them."""
    return f"the CRM lacks fields {', '.join(fields)}: run `{command('crm-setup', '--sink', sink)}`"


def send_without_refused(
    send: Callable[[dict[str, Any]], T],
    body: dict[str, Any],
    *,
    sobject: str,
    protected: set[str],
    policy: DriftPolicy,
    fix: Callable[[dict[str, str]], dict[str, str | None]] | None = None,
    on_drift: Callable[[], None] | None = None,
) -> tuple[T | None, dict[str, str]]:
    """``send(body)``; when the CRM refuses fields of it as missing, send it again without them.

    ``fix(refused)`` may handle some refused fields: ``{name: None}`` repaired (a question property created: send
    it again; each field is fixed at most once), ``{name: code}`` skip it with that reason whatever the policy
    (answers beyond the per-event cap). Returns (the answer, or None when no field was left to send; the skipped
    fields). Raises the CRM's error when it is not drift, MissingFields when the policy says pause.
    """
    skipped: dict[str, str] = {}
    fixed: set[str] = set()
    while True:
        remaining = {k: v for k, v in body.items() if k not in skipped}
        if not remaining:
            return None, skipped
        try:
            return send(remaining), skipped
        except SinkError as exc:
            refused = refused_in(refusals(exc), remaining, sobject)
            if not refused:
                raise
            if on_drift is not None:
                on_drift()
            forced: dict[str, str] = {}
            if fix is not None:
                handled = fix({f: c for f, c in refused.items() if f not in fixed})
                repaired = {f for f, c in handled.items() if c is None} - fixed
                forced = {f: c for f, c in handled.items() if c is not None and f in refused}
                fixed |= repaired
                refused = {f: c for f, c in refused.items() if f not in repaired and f not in forced}
                if not refused and not forced:
                    continue
            policy.check(sobject, refused, protected)
            skipped.update(refused)
            skipped.update(forced)


def skipped_detail(detail: dict[str, Any], skipped: dict[str, str]) -> dict[str, Any]:
    """``detail`` with the skipped fields added (and left out of ``fields``, which lists what was written)."""
    if not skipped:
        return detail
    out = dict(detail)
    if isinstance(out.get("fields"), list):
        out["fields"] = [f for f in out["fields"] if f not in skipped]
    out[SKIPPED] = dict(sorted({**out.get(SKIPPED, {}), **skipped}.items()))
    return out
