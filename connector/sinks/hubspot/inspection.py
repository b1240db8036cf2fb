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

    def credential_findings(self, name: str, settings: Any) -> list[tuple[str, str]]:
        """Nothing to check offline: a private-app token is validated by its first request."""
        return []


inspection = HubSpotInspection()

_PUBLIC = ("plan_hubspot_setup", "run_hubspot_setup", "validate_against_hubspot")


def __getattr__(name: str) -> Any:
    """The set-up functions themselves (``from connector.sinks.hubspot.inspection import run_hubspot_setup``),
    loaded on first use like the methods above."""
    if name in _PUBLIC:
        from connector.sinks.hubspot import setup

        return getattr(setup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
