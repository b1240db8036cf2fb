"""One entry point per job for the CLI, whatever the sink type: schema checks and set-up."""

from __future__ import annotations

from typing import Any

from connector.mapping.loader import LoadedMapping
from connector.sinks.setup import Finding, SetupReport

SETUP_TYPES = ("hubspot", "salesforce")


def schema_findings(name: str, settings: Any, mapping: LoadedMapping) -> list[Finding]:
    """What the CRM's schema says about a mapping (empty for sink types without a schema check)."""
    if settings.type == "hubspot":
        from connector.sinks.hubspot.setup import validate_against_hubspot

        return validate_against_hubspot(settings, mapping, sink=name)
    if settings.type == "salesforce":
        from connector.sinks.salesforce.setup import validate_against_salesforce

        return validate_against_salesforce(settings, mapping, sink=name)
    return []


def run_setup(
    name: str, settings: Any, mapping: LoadedMapping, questions: list[str], *, dry_run: bool, out: Any = None
) -> SetupReport:
    """Create the connector's own properties (HubSpot) or fields with their field-level security (Salesforce);
    ``dry_run`` only reads; ``out`` (Salesforce) also writes a deployable Metadata API package."""
    if settings.type == "hubspot":
        from connector.sinks.hubspot.setup import run_hubspot_setup

        return run_hubspot_setup(settings, mapping, extra_questions=questions, dry_run=dry_run, sink=name)
    from connector.sinks.salesforce.setup_apply import run_salesforce_setup

    return run_salesforce_setup(settings, mapping, sink=name, dry_run=dry_run, out=out, questions=questions)
