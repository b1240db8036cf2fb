"""Salesforce schema check for a mapping (`connector validate`) and what `connector crm-setup` creates and reports.

Why: Salesforce refuses a whole write when ONE field in it is missing, not writable, too long or not a value of a
restricted picklist, and the delivery engine then dead-letters the event. So every field a mapping writes is checked
against the org's describe before deliveries start (one API call for all objects).

The set-up itself (``salesforce_setup.run_salesforce_setup``) creates the connector's own ``TwoX_*__c`` fields and
their field-level security over REST; this module holds what it creates (``CustomFieldSpec``), its report with the
manual steps for what the credentials may not do, and the Metadata API package (``out``) for admins who deploy.

Shapes are those of the HubSpot set-up (``Finding``, ``SetupReport``), so the CLI treats both CRMs alike.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from connector.errors import AuthError, ConfigError, PermanentError, RateLimited, SinkError
from connector.hints import command
from connector.mapping.loader import LoadedMapping
from connector.mapping.writes import WrittenProperty, mapping_writes
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.fields import coerce, describe_objects
from connector.sinks.salesforce.settings import SalesforceSinkSettings
from connector.sinks.setup import Finding, Level, SchemaAccessError, SetupReport

OWNED = re.compile(r"^TwoX_\w+__c$")
"""The connector's own custom fields: missing ones get set-up instructions, the others a plain error."""
TEXT_TYPES = frozenset({"string", "textarea", "phone", "email", "url", "encryptedstring", "combobox"})
STATUS_TABLES = {
    ("lead", "status"): "Lead Status",
    ("task", "status"): "Task Status",
    ("task", "priority"): "Task Priority",
    ("case", "status"): "Case Status",
    ("opportunity", "stagename"): "Stage",
}
"""Standard picklists whose values live in a Setup table (LeadStatus: IsConverted, TaskStatus: IsClosed, …).
Describe may call them unrestricted, but a value outside the table breaks conversion, closing and reports, and
the precedence rules rank exactly these values: treated as restricted (an error)."""
_ACTIVITY_PLACE = re.compile(r"^(activity\.|tasks\.|(outcomes\[\d+\]|fallback)\.activity\.)")
"""Mapping paths that write the call Task or a follow-up Task: created, and subject to activity.limits."""
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
PERMISSION_SET = "TwoX_Connector"
PERMISSION_SET_LABEL = "2X Connector"
METADATA_NS = "http://soap.sforce.com/2006/04/metadata"


class _NoGate:
    """Set-up makes a handful of calls; it need not draw from the workers' shared budget."""

    def wait(self, cost: int = 1) -> None: ...


# -- describing the org ---------------------------------------------------------------------------------------


def _objects(wanted: list[WrittenProperty]) -> list[str]:
    return sorted({w.object for w in wanted})


def _fields(body: Any) -> dict[str, dict[str, Any]]:
    return {str(f["name"]).lower(): f for f in (body or {}).get("fields") or [] if isinstance(f, dict)}


@contextlib.contextmanager
def connected(settings: SalesforceSinkSettings, sink: str) -> Iterator[SalesforceConnection]:
    """An open connection; failures that mean "the org cannot be asked at all" become SchemaAccessError."""
    try:
        connection = SalesforceConnection(sink, settings)
    except ConfigError as exc:
        raise SchemaAccessError(f"sinks.{sink}.auth cannot log in: {exc}", status=401) from exc
    connection.open(_NoGate())
    try:
        yield connection
    except AuthError as exc:  # status 401 whatever Salesforce said: the credentials are the problem
        raise SchemaAccessError(
            f"Salesforce rejected the credentials ({exc.code or exc.status}): check sinks.{sink}.auth",
            status=401,
            detail=exc.crm_message or "",
        ) from exc
    except RateLimited as exc:
        raise SchemaAccessError(f"Salesforce refused the request: {exc.crm_message or exc}", status=429) from exc
    except SinkError as exc:
        unreachable = not isinstance(exc, PermanentError) and (exc.status is None or exc.status >= 500)
        raise SchemaAccessError(
            f"Salesforce not reachable ({exc})" if unreachable else str(exc),
            status=exc.status,
            unreachable=unreachable,
            detail=f"{settings.instance_url}: {exc}",
        ) from exc
    finally:
        connection.close()


def describe_on(connection: SalesforceConnection, objects: list[str]) -> dict[str, Any]:
    """Describe bodies by object name (a PermanentError for an object the org lacks), 25 objects a request."""
    found: dict[str, Any] = {}
    for start in range(0, len(objects), 25):
        described, failures = describe_objects(connection, objects[start : start + 25])
        found.update(described)
        found.update(failures)
    return found


def _describe(settings: SalesforceSinkSettings, objects: list[str], sink: str) -> dict[str, Any]:
    """Describe bodies by object name; SchemaAccessError when the org cannot be asked at all."""
    with connected(settings, sink) as connection:
        return describe_on(connection, objects)


# -- checking one written property ----------------------------------------------------------------------------


def validate_against_salesforce(
    settings: SalesforceSinkSettings, mapping: LoadedMapping, *, sink: str = "salesforce"
) -> list[Finding]:
    """Every problem Salesforce would raise when the mapping writes: missing or read-only fields, wrong value
    types, restricted picklist values, texts longer than their field. One API call. Never raises: an unreachable
    org gives one warning (validating a config offline must work), rejected credentials one error."""
    wanted = mapping_writes(mapping)
    try:
        org = _describe(settings, _objects(wanted), sink)
    except SchemaAccessError as exc:
        if exc.unreachable:
            return [Finding("warning", None, None, f"Salesforce not reachable: schema not checked ({exc.detail})")]
        return [Finding("error" if exc.status == 401 else "warning", None, None, f"{exc}; schema not checked")]
    return _findings(mapping, wanted, org, sink)


def _findings(mapping: LoadedMapping, wanted: list[WrittenProperty], org: dict[str, Any], sink: str) -> list[Finding]:
    findings = [
        Finding(
            "error",
            obj,
            None,
            f"the org has no sObject {obj}, or this user cannot see it ({org[obj].code or org[obj].status})",
        )
        for obj in _objects(wanted)
        if isinstance(org.get(obj), SinkError)
    ]
    for written in wanted:
        body = org.get(written.object)
        if not isinstance(body, SinkError):
            findings += _check(mapping, written, _fields(body), sink)
    return findings


def _check(
    mapping: LoadedMapping, written: WrittenProperty, fields: dict[str, dict[str, Any]], sink: str
) -> list[Finding]:
    places = tuple(written.places)
    definition = fields.get(written.name.lower())
    if definition is None:
        return [_missing(written, fields, sink)]
    found: list[Finding] = []

    def add(level: Level, message: str) -> None:
        found.append(Finding(level, written.object, written.name, message, places))

    creating = [p for p in places if p.startswith("contact.create.") or _ACTIVITY_PLACE.match(p)]
    if creating and not definition.get("createable"):
        add(
            "error",
            "cannot be set on create (not createable, or read-only for this user): remove it from "
            f"{', '.join(creating[:2])}",
        )
    if len(creating) < len(places) and not definition.get("updateable"):
        add(
            "error",
            "cannot be updated (not updateable, or read-only for this user): remove it from the contact updates",
        )
    ftype = str(definition.get("type") or "string")
    for literal in sorted(written.literals, key=repr):
        at = tuple(p for p in places if (v := mapping.values.get(p)) is not None and v.text == literal) or places
        found += [
            Finding(level, written.object, written.name, message, at)
            for level, message in _literal_problems(written, definition, ftype, literal)
        ]
    if ftype == "date" and written.kind == "datetime":
        add("warning", "a date-time is written to a date field: use `| date_only(tz)` for the lead's local date")
    elif written.kind in ("date", "datetime", "number") and ftype not in TEXT_TYPES | {
        "date",
        "datetime",
        "int",
        "double",
        "currency",
        "percent",
    }:
        add("error", f"a {written.kind} value is written to a {ftype} field")
    found += _length_problems(mapping, written, definition, ftype)
    return found


def _missing(written: WrittenProperty, fields: dict[str, dict[str, Any]], sink: str) -> Finding:
    places = tuple(written.places)
    hint = ", or this user cannot see it (field-level security)" if written.name.endswith("__c") else ""
    if OWNED.match(written.name):
        return Finding(
            "error",
            written.object,
            written.name,
            f"does not exist on {written.object} in the org{hint}: run `{command('crm-setup', '--sink', sink)}`",
            places,
        )
    names = [str(f.get("name")) for f in fields.values()]
    close = difflib.get_close_matches(written.name, names, n=1, cutoff=0.8)
    did_you_mean = f"did you mean {close[0]}? " if close else ""
    return Finding(
        "error",
        written.object,
        written.name,
        f"does not exist on {written.object} in the org{hint}: "
        f"{did_you_mean}fix the name in the mapping or create the field in Setup",
        places,
    )


def _literal_problems(
    written: WrittenProperty, definition: dict[str, Any], ftype: str, literal: Any
) -> list[tuple[Level, str]]:
    key = (written.object.lower(), written.name.lower())
    if isinstance(literal, bool) and ftype != "boolean":
        if ftype in TEXT_TYPES and ftype != "combobox":
            return [
                (
                    "warning",
                    (
                        f"{str(literal).lower()} is written to a {ftype} field: stored as the text "
                        f"'{str(literal).lower()}'"
                    ),
                )
            ]
        return [
            (
                "error",
                (
                    f"{str(literal).lower()} is written to a {ftype} field: Salesforce accepts true/false "
                    "only in a checkbox"
                ),
            )
        ]
    if ftype == "boolean" and not isinstance(coerce("boolean", literal), bool):
        return [("error", f"{literal!r} is written to a checkbox: use true or false")]
    if ftype in ("int", "double", "currency", "percent") and isinstance(coerce(ftype, literal), str):
        return [("error", f"{literal!r} is written to a {ftype} field: it must be a number")]
    if ftype not in ("picklist", "multipicklist") or not isinstance(literal, str):
        return []
    active = [str(v.get("value")) for v in definition.get("picklistValues") or [] if v.get("active", True)]
    chosen = literal.split(";") if ftype == "multipicklist" else [literal]
    bad = [v for v in chosen if v not in active]
    if not bad or not active:
        return []
    table = STATUS_TABLES.get(key)
    restricted = bool(definition.get("restrictedPicklist")) or table is not None
    same = [v for v in active if v.lower() == bad[0].lower()]
    hint = f" (did you mean {same[0]}? values are case-sensitive)" if same else ""
    shown = ", ".join(active[:30]) + (", …" if len(active) > 30 else "")
    consequence = (
        "a restricted picklist: Salesforce refuses the record"
        if definition.get("restrictedPicklist")
        else f"its values are kept in Setup ({table}): another breaks conversion, closing and reports"
        if table
        else "Salesforce stores it, but as no value of the list"
    )
    message = f"{bad[0]!r} is not an active value of {written.object}.{written.name}{hint} ({consequence})"
    return [("error" if restricted else "warning", f"{message}; its values are: {shown}")]


def _length_problems(
    mapping: LoadedMapping, written: WrittenProperty, definition: dict[str, Any], ftype: str
) -> list[Finding]:
    """Texts longer than the field: Salesforce refuses them (STRING_TOO_LONG) unless activity.limits cuts them."""
    length = int(definition.get("length") or 0)
    if ftype not in TEXT_TYPES | {"picklist", "multipicklist"} or length <= 0:
        return []
    places = tuple(written.places)
    limited = any(_ACTIVITY_PLACE.match(p) for p in places)  # limits apply to activity and task properties only
    limit = mapping.spec.activity.limits.get(written.name) if limited else None
    if limit is not None:
        if limit.max_length > length:
            return [
                Finding(
                    "warning",
                    written.object,
                    written.name,
                    f"activity.limits.{written.name}.max_length is {limit.max_length}, but the field holds "
                    f"{length} characters: lower it to {length}",
                    places,
                )
            ]
        return []
    found: list[Finding] = []
    for place in places:
        value = mapping.values.get(place)
        shortest, longest = _rendered_length(mapping, value.kind, value.text) if value else (0, None)
        if shortest > length or (longest or 0) > length:
            size = f"at least {shortest}" if shortest > length else f"up to {longest}"
            found.append(
                Finding(
                    "warning",
                    written.object,
                    written.name,
                    f"{place} renders {size} characters; the "
                    f"field holds {length}" + (f": add activity.limits.{written.name}" if limited else ""),
                    (place,),
                )
            )
    return found


def _rendered_length(mapping: LoadedMapping, kind: str, text: Any) -> tuple[int, int | None]:
    """(certain minimum, maximum when every part is known) of what a mapping value renders to."""
    if kind == "literal" or not isinstance(text, str):
        size = len(text) if isinstance(text, str) else 0
        return size, size if kind == "literal" else None
    bundles = [*mapping.spec.outcomes, mapping.spec.fallback]
    known: dict[str, list[str]] = {
        "outcome.label": [b.label or "" for b in bundles],
        "outcome.name": [b.name for b in bundles],
        **{f"constants.{k}": [str(v)] for k, v in mapping.spec.constants.items()},
    }
    shortest = longest = len(_EXPRESSION.sub("", text))
    bounded = True
    for match in _EXPRESSION.finditer(text):
        values = known.get((match[1] or "").strip())
        bounded = bounded and values is not None
        shortest += min(map(len, values or [""]))
        longest += max(map(len, values or [""]))
    return shortest, longest if bounded else None


# -- instructions for the fields the org lacks ----------------------------------------------------------------

_FIELD_TYPES = {
    "bool": ("Checkbox", "Checkbox"),
    "datetime": ("DateTime", "Date/Time"),
    "date": ("Date", "Date"),
    "number": ("Number", "Number(18, 0)"),
    "string": ("Text", "Text(255)"),
}
"""Value kind → (Metadata API type, what Setup's New Field wizard calls it)."""


@dataclass(frozen=True)
class CustomFieldSpec:
    """A custom field the mapping writes and the org lacks, with everything an admin needs to create it."""

    object: str
    name: str
    label: str
    type: str
    """Metadata API type: Checkbox, DateTime, Date, Number or Text."""
    setup_type: str
    """As the New Field wizard shows it: Checkbox, Date/Time, Date, Number(18, 0), Text(255)."""
    places: tuple[str, ...] = ()

    @property
    def length(self) -> int | None:
        return 255 if self.type == "Text" else None

    def steps(self) -> list[str]:
        """Setup → Object Manager, click by click."""
        details = {
            "Checkbox": "Default Value: Unchecked",
            "Text": "Length: 255",
            "Number": "Length: 18, Decimal Places: 0",
        }.get(self.type)
        return [
            f"Setup → Object Manager → {self.object} → Fields & Relationships → New",
            f"Data type: {self.setup_type.split('(')[0]} → Next",
            f"Field Label: {self.label}; Field Name: {self.name[:-3]} (Salesforce adds __c)"
            + (f"; {details}" if details else "")
            + " → Next",
            "Field-level security: tick Visible (not Read-Only) for the profile of the connector's user → Next",
            "Page layouts: optional → Save",
        ]

    def xml(self) -> str:
        """The ``<fields>`` element of ``objects/<Object>.object`` (Metadata API, mdapi format). Elements in the
        schema's order, fullName first then alphabetical: a deploy refuses one "invalid at this location"."""
        elements = {
            "defaultValue": "false" if self.type == "Checkbox" else None,
            "description": self.description(),
            "externalId": "false",
            "label": self.label,
            "length": self.length,
            "precision": 18 if self.type == "Number" else None,
            "required": None if self.type == "Checkbox" else "false",
            "scale": 0 if self.type == "Number" else None,
            "trackHistory": "false",
            "type": self.type,
        }
        body = "".join(f"        <{k}>{escape(str(v))}</{k}>\n" for k, v in elements.items() if v is not None)
        return f"    <fields>\n        <fullName>{escape(self.name)}</fullName>\n{body}    </fields>\n"

    @property
    def full_name(self) -> str:
        return f"{self.object}.{self.name}"

    def description(self) -> str:
        return f"Written by the 2X call connector ({', '.join(self.places[:2])})."[:1000]

    def metadata(self) -> dict[str, Any]:
        """The Tooling API ``CustomField.Metadata`` body: the Metadata API CustomField fields, as in ``xml``
        [docs: https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm]."""
        body: dict[str, Any] = {
            "type": self.type,
            "label": self.label,
            "description": self.description(),
            "externalId": False,
            "trackHistory": False,
        }
        if self.type == "Checkbox":
            body["defaultValue"] = "false"  # a checkbox needs a default
        else:
            body["required"] = False
        if self.length is not None:
            body["length"] = self.length
        if self.type == "Number":
            body.update(precision=18, scale=0)
        return body

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "setup_type": self.setup_type,
            "length": self.length,
            "steps": self.steps(),
            "places": list(self.places),
        }


def permission_set_steps(fields: list[str], *, create: bool, assign: bool) -> list[str]:
    """Setup clicks for what set-up could not do itself: the permission set, its field access, the assignment."""
    new = f"Setup → Permission Sets → New: Label {PERMISSION_SET_LABEL}, API Name {PERMISSION_SET} → Save"
    steps = [new] if create else []
    for full_name in fields:
        obj, name = full_name.split(".", 1)
        steps.append(
            f"Setup → Permission Sets → {PERMISSION_SET_LABEL} → Object Settings → {obj} → Edit → Field "
            f"Permissions: tick Read Access and Edit Access for {name} → Save"
        )
    if assign:
        steps.append(
            f"Setup → Permission Sets → {PERMISSION_SET_LABEL} → Manage Assignments → Add Assignment → "
            "the connector's user → Assign"
        )
    return steps


@dataclass
class SalesforceSetupReport(SetupReport):
    """`crm-setup` for Salesforce. ``created``: fields created (a dry run: to create); ``granted``: fields given
    read and edit access in the permission set; ``fields`` and ``manual``: what the credentials were not allowed
    to do, with the steps for an admin; ``files``: the Metadata API package written with ``--out``."""

    permission_set: str = PERMISSION_SET
    created_permission_set: bool = False
    granted: list[str] = field(default_factory=list)
    assigned: bool = False
    fields: list[CustomFieldSpec] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the mapping can write every field: nothing left for an admin, no error."""
        return not self.fields and not self.manual and super().ok

    @property
    def changed(self) -> bool:
        return bool(self.created or self.granted or self.assigned or self.created_permission_set)

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "permission_set": self.permission_set,
            "created_permission_set": self.created_permission_set,
            "granted": self.granted,
            "assigned": self.assigned,
            "fields": [f.to_dict() for f in self.fields],
            "manual": self.manual,
            "files": self.files,
        }

    def render(self) -> str:
        """What was done (or would be, in a dry run), then the manual steps for what was not allowed."""
        would = "would " if self.dry_run else ""
        lines: list[str] = []
        if self.created:
            lines.append(
                f"{'Would create' if self.dry_run else 'Created'} {len(self.created)} field(s): "
                + ", ".join(self.created)
            )
        if self.created_permission_set:
            lines.append(f"{'Would create' if self.dry_run else 'Created'} permission set {self.permission_set}")
        if self.granted:
            lines.append(
                f"{would.capitalize() or ''}{'grant' if self.dry_run else 'Granted'} read and edit access "
                f"in {self.permission_set} to: " + ", ".join(self.granted)
            )
        if self.assigned:
            lines.append(
                f"{'Would assign' if self.dry_run else 'Assigned'} {self.permission_set} to the connector's user"
            )
        if not self.changed and not self.fields and not self.manual:
            lines.append(
                f"Every custom field the mapping of sink {self.sink!r} writes exists and is writable: nothing to do."
            )
        if self.fields or self.manual:
            lines += [
                "",
                "The connector's user is not allowed to do the following (it needs the permissions "
                '"Customize Application" for fields and "Manage Users" for permission sets). An admin can '
                "do it, or deploy the package written with --out:",
                "",
            ]
            for spec in self.fields:
                lines += [
                    f"{spec.object}.{spec.name}  ({spec.setup_type}, label {spec.label!r})",
                    *(f"   {n}. {step}" for n, step in enumerate(spec.steps(), 1)),
                    "",
                ]
            lines += [f"   - {step}" for step in self.manual]
        if {"Contact", "Lead"} <= {c.split(".")[0] for c in self.created} | {s.object for s in self.fields}:
            lines.append(
                "Optional: Object Manager → Lead → Fields & Relationships → Map Lead Fields: map each Lead "
                "TwoX_* field to the Contact field of the same name, so conversion keeps it."
            )
        if self.files:
            lines += [
                "",
                "Metadata API package: " + ", ".join(self.files),
                (
                    f"Deploy: sf project deploy start --metadata-dir {Path(self.files[-1]).parent} "
                    f"--target-org <alias>; then assign the permission set {PERMISSION_SET} to the connector's "
                    "user (fields deployed this way are invisible until it is)."
                ),
            ]
        return "\n".join(lines)


def field_spec(written: WrittenProperty) -> CustomFieldSpec:
    """What to create for one missing custom field, from the kind of value the mapping writes."""
    metadata_type, setup_type = _FIELD_TYPES[written.kind]
    words = written.name[:-3].replace("TwoX_", "2X ", 1).replace("_", " ").strip()
    return CustomFieldSpec(written.object, written.name, words[:40], metadata_type, setup_type, tuple(written.places))


def write_package(specs: Iterable[CustomFieldSpec], out: Path, api_version: str) -> list[str]:
    """A Metadata API (mdapi format) package creating ``specs`` and a permission set for them; the paths written."""
    specs = list(specs)
    header = '<?xml version="1.0" encoding="UTF-8"?>\n'
    files: dict[Path, str] = {}
    for obj in sorted({s.object for s in specs}):
        body = "".join(s.xml() for s in specs if s.object == obj)
        files[out / "objects" / f"{obj}.object"] = (
            f'{header}<CustomObject xmlns="{METADATA_NS}">\n{body}</CustomObject>\n'
        )
    permissions = "".join(
        f"    <fieldPermissions>\n        <editable>true</editable>\n        <field>{s.object}."
        f"{s.name}</field>\n        <readable>true</readable>\n    </fieldPermissions>\n"
        for s in specs
    )
    files[out / "permissionsets" / f"{PERMISSION_SET}.permissionset"] = (
        f'{header}<PermissionSet xmlns="{METADATA_NS}">\n    <description>Lets the 2X call connector read and write '
        f"its fields.</description>\n{permissions}    <hasActivationRequired>false</hasActivationRequired>\n"
        f"    <label>2X Call Connector</label>\n</PermissionSet>\n"
    )
    members = "".join(f"        <members>{s.object}.{s.name}</members>\n" for s in specs)
    files[out / "package.xml"] = (
        f'{header}<Package xmlns="{METADATA_NS}">\n    <types>\n{members}        <name>CustomField</name>\n'
        f"    </types>\n    <types>\n        <members>{PERMISSION_SET}</members>\n        <name>PermissionSet</name>"
        f"\n    </types>\n    <version>{api_version}</version>\n</Package>\n"
    )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [str(p) for p in files]
