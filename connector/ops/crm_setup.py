"""CRM set-up for a mapping: create the connector's own custom properties, and check a mapping against the CRM's
schema before deliveries start. The CLI goes through ``crm_checks`` (each sink type's ``SchemaInspection``); the
HubSpot names here are kept for existing callers and come from the sink's public inspection module."""

from connector.ops.crm_questions import seen_question_names, stored_question_names
from connector.sinks.hubspot.inspection import (
    plan_hubspot_setup,
    run_hubspot_setup,
    validate_against_hubspot,
)
from connector.sinks.setup import (
    Finding,
    PropertySpec,
    SchemaAccessError,
    SetupPlan,
    SetupReport,
)

__all__ = [
    "Finding",
    "PropertySpec",
    "SchemaAccessError",
    "SetupPlan",
    "SetupReport",
    "plan_hubspot_setup",
    "run_hubspot_setup",
    "seen_question_names",
    "stored_question_names",
    "validate_against_hubspot",
]
