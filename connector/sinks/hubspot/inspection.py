"""HubSpot's public schema inspection (``SchemaInspection``): what `connector validate` and `connector crm-setup`
use, so they never reach into the sink's private modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.mapping.loader import LoadedMapping
    from connector.sinks.setup import Finding, SetupReport


class HubSpotInspection:
    """Checks a mapping against a portal's properties, and creates the connector's own (`twox_*`) ones."""

    def schema_findings(self, name: str, settings: Any, mapping: LoadedMapping) -> list[Finding]:
        from connector.sinks.hubspot.setup import validate_against_hubspot

        return validate_against_hubspot(settings, mapping, sink=name)

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
        """``out`` is ignored: HubSpot properties are created over the API only."""
        from connector.sinks.hubspot.setup import run_hubspot_setup

        return run_hubspot_setup(settings, mapping, extra_questions=questions, dry_run=dry_run, sink=name)


inspection = HubSpotInspection()
