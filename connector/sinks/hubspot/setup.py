"""HubSpot portal set-up and schema check for a mapping: `connector crm-setup` and `connector validate`.

Why this exists: HubSpot refuses a whole contact update when ONE property in it does not exist
(``PROPERTY_DOESNT_EXIST``), or when one enumeration value is not an option (``INVALID_OPTION``, case-sensitive).
The delivery engine then dead-letters the event. So the properties a mapping writes are checked against the
portal before deliveries start, and the connector's own ones are created.

Ownership rule: only properties whose name starts with ``twox_`` belong to the connector and are created (in a
``twox`` property group). Anything else the portal lacks is a typo in a standard property name or a custom
property the portal's owner must create with the type and options they want: it is reported, never created.

Question answers land on ``twox_q_<sanitized name>`` (the mapping's ``question_fields.wildcard``); which questions
exist is only known from the calls themselves, so callers pass names (``seen_question_names`` reads them from
the stored events). A new question in the 2X script needs a new property: run set-up again.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from connector.hints import command
from connector.mapping.loader import LoadedMapping
from connector.mapping.writes import WrittenProperty, named_by_questions, wanted_properties
from connector.sinks.hubspot.settings import HubSpotSinkSettings
from connector.sinks.hubspot.setup_api import AlreadyExists, HubSpotSchemaApi
from connector.sinks.setup import (
    Finding,
    Level,
    PropertySpec,
    SchemaAccessError,
    SetupPlan,
    SetupReport,
)

OWNED_PREFIX = "twox_"
GROUP_NAME = "twox"
GROUP_LABEL = "2X calls"
BOOL_OPTIONS = (("Yes", "true"), ("No", "false"))
"""HubSpot's booleancheckbox properties carry exactly these two option values (what the UI creates)."""
HUBSPOT_TYPES: dict[str, tuple[str, str]] = {
    "bool": ("bool", "booleancheckbox"),
    "datetime": ("datetime", "date"),
    "date": ("date", "date"),
    "number": ("number", "number"),
    "string": ("string", "text"),
}
"""Value kind → (HubSpot ``type``, ``fieldType``) of a property the connector creates."""
_VALID_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ][\d:.]+([Zz]|[+-]\d{2}:?\d{2})?)?|\d{1,15}")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


# -- what the mapping writes ------------------------------------------------------------------------


def _question_of(written: WrittenProperty) -> str | None:
    for place in written.places:
        if place.startswith("question_fields.wildcard ("):
            return place[len("question_fields.wildcard (") : -1]
    return None


def _spec_for(written: WrittenProperty) -> PropertySpec:
    type_, field_type = HUBSPOT_TYPES[written.kind]
    question = _question_of(written)
    label = f"2X answer: {question}" if question else "2X: " + written.name.removeprefix(OWNED_PREFIX).replace("_", " ")
    origin = f"the answer to the 2X question {question!r}" if question else ", ".join(written.places[:3])
    return PropertySpec(
        object=written.object,
        name=written.name,
        label=label[:100],
        type=type_,
        field_type=field_type,
        group=GROUP_NAME,
        description=f"Written by the 2X call connector: {origin}."[:500],
        options=BOOL_OPTIONS if written.kind == "bool" else (),
        places=tuple(written.places),
    )


# -- planning ---------------------------------------------------------------------------------------


def plan_hubspot_setup(
    mapping: LoadedMapping,
    properties_by_object: dict[str, list[dict[str, Any]]],
    *,
    extra_questions: Sequence[str] = (),
    groups_by_object: dict[str, set[str]] | None = None,
    sink: str = "hubspot",
) -> SetupPlan:
    """What the portal lacks for ``mapping`` (pure: no requests).

    ``properties_by_object``: the properties API's JSON per object (only ``name`` and ``type`` are read).
    ``groups_by_object``: property group names per object; when not given, the ``twox`` group is assumed missing
    wherever a property is to be created (creating it again is harmless: HubSpot answers 409).
    """
    plan = SetupPlan()
    for written in wanted_properties(mapping, extra_questions):
        existing = {p["name"]: p for p in properties_by_object.get(written.object, [])}
        key = f"{written.object}.{written.name}"
        owned = written.name.startswith(OWNED_PREFIX)
        if written.name in existing:
            if owned:
                plan.present.append(key)
                plan.problems += _type_findings(written, existing[written.name])
            continue
        if not owned and not named_by_questions(written):  # a question the map names is created, as on Salesforce
            plan.problems.append(_missing(written, existing, sink))
        elif not _VALID_NAME.fullmatch(written.name):
            plan.problems.append(
                Finding(
                    "error",
                    written.object,
                    written.name,
                    "not a valid HubSpot property name (lower-case letters, digits and "
                    "underscores, starting with a letter): fix it in the mapping",
                    tuple(written.places),
                )
            )
        else:
            plan.create.append(_spec_for(written))
    for obj in sorted({spec.object for spec in plan.create}):
        if groups_by_object is None or GROUP_NAME not in groups_by_object.get(obj, set()):
            plan.groups.append(obj)
    return plan


def _missing(written: WrittenProperty, existing: dict[str, Any], sink: str) -> Finding:
    places = tuple(written.places)
    if written.name.startswith(OWNED_PREFIX) or named_by_questions(written):
        return Finding(
            "error",
            written.object,
            written.name,
            f"does not exist in the portal: run `{command('crm-setup', '--sink', sink)}`",
            places,
        )
    close = difflib.get_close_matches(written.name, list(existing), n=1, cutoff=0.8)
    hint = f"did you mean {close[0]}? " if close else ""
    return Finding(
        "error",
        written.object,
        written.name,
        f"does not exist on {written.object} in the portal: {hint}crm-setup creates only the connector's "
        f"own {OWNED_PREFIX}* properties and the ones question_fields names; fix the name in the mapping or create the property in HubSpot",
        places,
    )


# -- running ----------------------------------------------------------------------------------------


def _api(settings: HubSpotSinkSettings, sink: str) -> HubSpotSchemaApi:
    return HubSpotSchemaApi(settings.access_token.get_secret_value(), settings.base_url, sink=sink)


def run_hubspot_setup(
    settings: HubSpotSinkSettings,
    mapping: LoadedMapping,
    *,
    extra_questions: Sequence[str] = (),
    dry_run: bool = False,
    sink: str = "hubspot",
) -> SetupReport:
    """Create the ``twox`` group(s) and the missing connector-owned properties; idempotent.

    Requests: one GET per object the mapping writes (plus one GET of the groups per object that needs a property),
    then one POST per group and property to create. A second run therefore only reads. A 409 on create (a
    concurrent run, or a person was quicker) counts as "already there". A property HubSpot refuses is reported
    and the others are still created; a rejected token or an unreachable portal raises SchemaAccessError.
    """
    report = SetupReport(sink=sink, dry_run=dry_run)
    objects = sorted({w.object for w in wanted_properties(mapping, extra_questions)})
    with _api(settings, sink) as api:
        properties = {obj: api.properties(obj) for obj in objects}
        plan = plan_hubspot_setup(mapping, properties, extra_questions=extra_questions, sink=sink)
        if plan.create:
            groups = {obj: api.group_names(obj) for obj in plan.groups}
            plan = plan_hubspot_setup(
                mapping, properties, extra_questions=extra_questions, groups_by_object=groups, sink=sink
            )
        report.already_present, report.problems = list(plan.present), list(plan.problems)
        if dry_run:
            report.created_groups = list(plan.groups)
            report.created = [f"{s.object}.{s.name}" for s in plan.create]
            return report
        for obj in plan.groups:
            try:
                api.create_group(obj, GROUP_NAME, GROUP_LABEL)
                report.created_groups.append(obj)
            except AlreadyExists:
                pass
        for spec in plan.create:
            key = f"{spec.object}.{spec.name}"
            try:
                api.create_property(spec)
                report.created.append(key)
            except AlreadyExists:
                report.already_present.append(key)
            except SchemaAccessError as exc:
                if exc.unreachable or exc.status in (401, 403, 429):
                    raise
                report.problems.append(Finding("error", spec.object, spec.name, f"not created: {exc}", spec.places))
    return report


# -- checking the mapping against the portal ----------------------------------------------------------


def validate_against_hubspot(
    settings: HubSpotSinkSettings, mapping: LoadedMapping, *, sink: str = "hubspot", question_names: Sequence[str] = ()
) -> list[Finding]:
    """Every problem HubSpot would raise when the mapping writes: missing or read-only properties, values of the
    wrong type, enumeration literals that are not options. Never raises: an unreachable portal gives one warning
    (validating a config offline must still work); a rejected token gives one error."""
    wanted = wanted_properties(mapping, question_names)
    try:
        with _api(settings, sink) as api:
            portal = {obj: {p["name"]: p for p in api.properties(obj)} for obj in sorted({w.object for w in wanted})}
    except SchemaAccessError as exc:
        if exc.unreachable:
            return [Finding("warning", None, None, f"HubSpot not reachable: schema not checked ({exc.detail})")]
        level: Level = "error" if exc.status in (401, 403) else "warning"
        return [Finding(level, None, None, f"{exc}; schema not checked")]
    findings: list[Finding] = []
    for written in wanted:
        definition = portal[written.object].get(written.name)
        if definition is None:
            findings.append(_missing(written, portal[written.object], sink))
            continue
        metadata = definition.get("modificationMetadata") or {}
        if metadata.get("readOnlyValue") or definition.get("calculated"):
            findings.append(
                Finding(
                    "error",
                    written.object,
                    written.name,
                    "is read-only in HubSpot (calculated or set by HubSpot itself): the connector "
                    "cannot write it; remove it from the mapping",
                    tuple(written.places),
                )
            )
            continue
        findings += _type_findings(written, definition)
    return findings


def _text(literal: Any) -> str:
    """A literal as HubSpot receives it (the sink sends booleans as true/false)."""
    return ("true" if literal else "false") if isinstance(literal, bool) else str(literal)


def _type_findings(written: WrittenProperty, definition: dict[str, Any]) -> list[Finding]:
    """Does what the mapping writes fit the property's HubSpot type (and, for enumerations, its options)?"""
    htype, kind = str(definition.get("type") or "string"), written.kind
    literals = sorted({_text(v) for v in written.literals})
    found: list[Finding] = []

    def add(level: Level, message: str) -> None:
        found.append(Finding(level, written.object, written.name, message, tuple(written.places)))

    if htype == "enumeration":
        options = [str(o.get("value")) for o in definition.get("options") or []]
        if definition.get("externalOptions") or not options:
            return found
        for literal in literals:
            if literal not in options:
                same = [o for o in options if o.lower() == literal.lower()]
                hint = f" (did you mean {same[0]}? option values are case-sensitive)" if same else ""
                shown = ", ".join(options[:25]) + (", …" if len(options) > 25 else "")
                add(
                    "error",
                    f"{literal!r} is not an option of {written.object}.{written.name}{hint}; its options are: {shown}",
                )
        if kind in ("number", "date", "datetime") and not literals:
            add("warning", f"a {kind} value is written to an enumeration property: it must be one of its options")
    elif htype == "bool":
        for literal in literals:
            if literal.lower() not in ("true", "false"):
                add("error", f"{literal!r} written to a bool property: HubSpot accepts only true or false")
        if kind in ("number", "date", "datetime"):
            add("error", f"a {kind} value is written to a bool property: HubSpot accepts only true or false")
    elif htype in ("number", "datetime", "date"):
        pattern, wanted = (_NUMBER, "a number") if htype == "number" else (_ISO, "ISO 8601 or epoch milliseconds")
        bad = [v for v in literals if not pattern.fullmatch(v)]
        if bad:
            add("error", f"{bad[0]!r} written to a {htype} property: HubSpot wants {wanted}")
        elif kind == "string" and not literals:
            add("warning", f"a text value is written to a {htype} property: it must render as {wanted}")
        elif kind == "datetime" and htype == "date":
            add(
                "warning",
                "a date-time is written to a date property: HubSpot takes only midnight UTC there "
                "(use `| date_only(tz)`)",
            )
    elif kind == "bool":  # string, phone_number
        add("warning", f"true/false is written to a {htype} property: it is stored as the text 'true'/'false'")
    return found
