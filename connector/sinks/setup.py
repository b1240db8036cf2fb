"""What `crm-setup` and the schema check produce, shared by every CRM (HubSpot now, Salesforce later).

Plain dataclasses with a ``to_dict`` each, so the CLI prints JSON and tests compare values without knowing the
CRM's client models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from connector.errors import ConnectorError

Level = Literal["error", "warning"]


class SchemaAccessError(ConnectorError):
    """The CRM's schema API could not be used (token rejected, scope missing, unreachable, refused).

    ``unreachable`` separates "we never got an answer" (the schema check then only warns, since validating a
    config offline must work) from "the CRM answered no" (a real configuration problem).
    """

    def __init__(self, message: str, *, status: int | None = None, unreachable: bool = False, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable
        self.detail = detail
        """For an unreachable CRM: where and how (``http://host: NewConnectionError``), no secrets."""


@dataclass(frozen=True)
class Finding:
    """One problem between a mapping and the CRM's schema, with the mapping places that cause it."""

    level: Level
    object: str | None
    property: str | None
    message: str
    places: tuple[str, ...] = ()

    def render(self) -> str:
        """One line for a terminal: ``error: contacts.hs_lead_status: … (at outcomes[0].contact.…)``."""
        where = ".".join(p for p in (self.object, self.property) if p)
        at = f" (at {', '.join(self.places[:3])}{', …' if len(self.places) > 3 else ''})" if self.places else ""
        return f"{self.level}: {where + ': ' if where else ''}{self.message}{at}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "object": self.object,
            "property": self.property,
            "message": self.message,
            "places": list(self.places),
        }


@dataclass(frozen=True)
class PropertySpec:
    """A custom property the connector will create: everything the CRM's create call needs."""

    object: str
    name: str
    label: str
    type: str
    field_type: str
    group: str
    description: str = ""
    options: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs, in display order."""
    places: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group,
            "options": [{"label": label, "value": value} for label, value in self.options],
        }


@dataclass
class SetupPlan:
    """What a portal lacks for a mapping: groups and properties to create, what is there, what we cannot fix."""

    groups: list[str] = field(default_factory=list)
    """Objects whose connector property group must be created first."""
    create: list[PropertySpec] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    """``object.name`` of connector-owned properties the portal already has."""
    problems: list[Finding] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.groups and not self.create


@dataclass
class SetupReport:
    """The outcome of one `crm-setup` run (or dry run: ``created`` then lists what *would* be created)."""

    sink: str
    dry_run: bool
    created_groups: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error left: every property the mapping writes can be written (warnings aside)."""
        return not any(f.level == "error" for f in self.problems)

    def render(self) -> str:
        """What was done (or would be, in a dry run), for the person running `crm-setup` (stdout has the JSON):
        without it a HubSpot run said nothing on the terminal, whatever it created."""
        verb = "Would create" if self.dry_run else "Created"
        lines: list[str] = []
        if self.created_groups:
            lines.append(f"{verb} the connector's HubSpot property group on: " + ", ".join(self.created_groups))
        if self.created:
            lines.append(
                f"{verb} {len(self.created)} HubSpot propert{'y' if len(self.created) == 1 else 'ies'}: "
                + ", ".join(self.created)
            )
        if not self.created and not self.created_groups and self.ok:
            lines.append(f"Every custom property the mapping of sink {self.sink!r} writes exists: nothing to do.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "created_groups": self.created_groups,
            "created": self.created,
            "already_present": self.already_present,
            "problems": [p.to_dict() for p in self.problems],
        }
