"""Salesforce's public schema inspection (``SchemaInspection``): what `connector validate` and
`connector crm-setup` use, so they never reach into the sink's private modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.mapping.loader import LoadedMapping
    from connector.sinks.setup import Finding, SetupReport


class SalesforceInspection:
    """Checks a mapping against an org's describe, and creates the connector's fields with their field-level
    security (or writes a deployable Metadata API package to ``out``)."""

    def schema_findings(self, name: str, settings: Any, mapping: LoadedMapping) -> list[Finding]:
        from connector.sinks.salesforce.setup import validate_against_salesforce

        return validate_against_salesforce(settings, mapping, sink=name)

    def run_setup(
        self,
        name: str,
        settings: Any,
        mapping: LoadedMapping,
        questions: list[str],
        *,
        dry_run: bool,
        out: Any = None,
    ) -> SetupReport:
        from connector.sinks.salesforce.setup_apply import run_salesforce_setup

        return run_salesforce_setup(settings, mapping, sink=name, dry_run=dry_run, out=out, questions=questions)

    def credential_findings(self, name: str, settings: Any) -> list[tuple[str, str]]:
        """(level, message) about the configured login flow, checked offline (e.g. a JWT key file missing)."""
        from connector.sinks.salesforce.client import login_findings

        return login_findings(settings, name)


inspection = SalesforceInspection()
