"""One entry point per job for the CLI, whatever the sink type: credential and schema checks, and set-up.

Each sink type brings its own (``SchemaInspection``, named by its registry entry); a type without one has
nothing to check or set up."""

from __future__ import annotations

from typing import Any

from connector.mapping.loader import LoadedMapping
from connector.sinks.base import SchemaInspection
from connector.sinks.registry import installed_sink_types, sink_inspector
from connector.sinks.setup import Finding, SetupReport


def setup_types() -> list[str]:
    """The installed sink types `crm-setup` can prepare (those with a schema inspection)."""
    return sorted(kind for kind in installed_sink_types() if _inspector(kind) is not None)


def credential_findings(name: str, settings: Any) -> list[tuple[str, str]]:
    """(level, message) about a sink's credentials, checked offline (empty for types without a check)."""
    inspector = _inspector(settings.type)
    return inspector.credential_findings(name, settings) if inspector is not None else []


def schema_findings(name: str, settings: Any, mapping: LoadedMapping) -> list[Finding]:
    """What the CRM's schema says about a mapping (empty for sink types without a schema check)."""
    inspector = _inspector(settings.type)
    return inspector.schema_findings(name, settings, mapping) if inspector is not None else []


def run_setup(
    name: str, settings: Any, mapping: LoadedMapping, questions: list[str], *, dry_run: bool, out: Any = None
) -> SetupReport:
    """Create the connector's own properties (HubSpot) or fields with their field-level security (Salesforce);
    ``dry_run`` only reads; ``out`` (Salesforce) also writes a deployable Metadata API package."""
    inspector = _inspector(settings.type)
    if inspector is None:
        raise ValueError(f"sink type {settings.type!r} has no set-up (supported: {', '.join(setup_types())})")
    return inspector.run_setup(name, settings, mapping, questions, dry_run=dry_run, out=out)


def _inspector(sink_type: str) -> SchemaInspection | None:
    found = sink_inspector(sink_type)
    return found if isinstance(found, SchemaInspection) else None
