"""`connector crm-setup` for Salesforce: create the connector's own custom fields and let its user write them.

Why field-level security too: a field created through the API is visible to no profile until someone grants it,
so the first delivery after a bare "create field" fails with INVALID_FIELD ("No such column"). Set-up therefore
also keeps a permission set ``TwoX_Connector`` that grants read and edit on every ``TwoX_*__c`` field the mapping
writes and assigns it to the connector's own user (found through ``/services/oauth2/userinfo``).

Idempotent by reading first: the Tooling API lists the fields that exist even when this user cannot see them
(describe shows only visible ones), the permission set is found by name, its field permissions and the assignment
by SOQL; only what is missing is created, and a field already writable through a profile needs nothing. A second
run makes only reads.

What the credentials may not do (no "Customize Application" to create fields, no "Manage Users" for permission
sets: Salesforce answers INSUFFICIENT_ACCESS_*) is collected with the Setup clicks for those items alone; the
command then exits non-zero. Anything else Salesforce refuses is a problem (error) of the report; a rejected
login, the rate limit or an unreachable org stop set-up with SchemaAccessError, as for HubSpot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from connector.errors import PermanentError, SinkError
from connector.mapping.loader import LoadedMapping
from connector.mapping.writes import named_by_questions, wanted_properties
from connector.sinks.salesforce.settings import SalesforceSinkSettings
from connector.sinks.salesforce.setup import (
    OWNED,
    PERMISSION_SET,
    PERMISSION_SET_LABEL,
    CustomFieldSpec,
    SalesforceSetupReport,
    _fields,
    _findings,
    _objects,
    connected,
    describe_on,
    field_spec,
    permission_set_steps,
    write_package,
)
from connector.sinks.salesforce.setup_api import SalesforceSetupApi
from connector.sinks.setup import Finding

_DUPLICATE = frozenset({"DUPLICATE_DEVELOPER_NAME", "DUPLICATE_VALUE"})


def not_allowed(exc: SinkError) -> bool:
    """Salesforce said this user lacks the permission (INSUFFICIENT_ACCESS_OR_READONLY and its siblings, or a 403
    that is not the API limit) [docs: StatusCode list, https://developer.salesforce.com/docs/atlas.en-us.api.meta/
    api/sforce_api_calls_concepts_core_data_objects.htm#statuscode]."""
    return isinstance(exc, PermanentError) and (
        str(exc.code or "").startswith("INSUFFICIENT_ACCESS") or exc.status == 403
    )


def run_salesforce_setup(
    settings: SalesforceSinkSettings,
    mapping: LoadedMapping,
    *,
    sink: str = "salesforce",
    dry_run: bool = False,
    out: Path | None = None,
    questions: Sequence[str] = (),
) -> SalesforceSetupReport:
    """Create the missing ``TwoX_*__c`` fields the mapping writes, and the custom fields its question section names
    (``question_fields.map``, and ``wildcard`` for each of ``questions``), grant the connector's user read and edit
    on them and report what is left; ``dry_run`` only reads. Raises SchemaAccessError when the org cannot be
    asked."""
    wanted = wanted_properties(mapping, questions)
    objects = _objects(wanted)
    report = SalesforceSetupReport(sink=sink, dry_run=dry_run)
    with connected(settings, sink) as connection:
        api = SalesforceSetupApi(connection)
        org = describe_on(connection, objects)
        described = {o for o in objects if not isinstance(org.get(o), SinkError)}
        try:
            existing = api.existing_custom_fields(sorted(described)) if described else set()
        except PermanentError:  # no Tooling API access: what describe shows is all we know
            existing = {f"{o}.{n}" for o in described for n in _fields(org[o]) if n.endswith("__c")}
        owned = {
            (w.object, w.name): w
            for w in wanted
            if w.object in described and (OWNED.match(w.name) or (named_by_questions(w) and w.name.endswith("__c")))
        }
        missing: list[CustomFieldSpec] = []
        needs_access: list[str] = []
        for (obj, name), written in sorted(owned.items()):
            full_name, visible = f"{obj}.{name}", _fields(org[obj]).get(name.lower())
            if visible is not None or full_name.lower() in existing:
                report.already_present.append(full_name)
                if visible is None or not (visible.get("createable") and visible.get("updateable")):
                    needs_access.append(full_name)
                continue
            missing.append(field_spec(written))
        for spec in missing:
            if _create_field(api, spec, report):
                needs_access.append(spec.full_name)
        if needs_access:
            _grant_access(api, needs_access, report)
        if out is not None and missing:
            report.files = write_package(missing, Path(out), settings.api_version)
        if report.changed and not dry_run:
            org = describe_on(connection, objects)  # check the result the way a delivery will see it
        handled = {tuple(f.split(".", 1)) for f in [*report.created, *report.granted]} | {
            (s.object, s.name) for s in report.fields
        }
        if dry_run or report.fields or report.manual:
            report.problems += [
                f for f in _findings(mapping, wanted, org, sink) if (f.object, f.property) not in handled
            ]
        else:
            report.problems += _findings(mapping, wanted, org, sink)
    return report


def _create_field(api: SalesforceSetupApi, spec: CustomFieldSpec, report: SalesforceSetupReport) -> bool:
    """Create one field (or only plan it); True when it exists afterwards and needs access granted."""
    if report.dry_run:
        report.created.append(spec.full_name)
        return True
    try:
        api.create_field(spec.full_name, spec.metadata())
    except PermanentError as exc:
        if not_allowed(exc):
            report.fields.append(spec)
            return False
        if exc.code in _DUPLICATE:  # created meanwhile (another run, an admin)
            report.already_present.append(spec.full_name)
            return True
        report.problems.append(
            Finding("error", spec.object, spec.name, f"not created: {exc} ({exc.crm_message or ''})", spec.places)
        )
        return False
    report.created.append(spec.full_name)
    return True


def _grant_access(api: SalesforceSetupApi, fields: list[str], report: SalesforceSetupReport) -> None:
    """Permission set, read+edit per field, assignment to the connector's user: whatever is missing."""
    permission_set = api.permission_set_id(PERMISSION_SET)
    if permission_set is None:
        report.created_permission_set = True
        if report.dry_run:
            report.granted += fields
            report.assigned = True
            return
        created = _allowed(
            lambda: api.create_permission_set(
                PERMISSION_SET, PERMISSION_SET_LABEL, "Lets the 2X call connector read and write its fields."
            )
        )
        if created is None:
            report.created_permission_set = False
            report.manual += permission_set_steps(fields, create=True, assign=True)
            return
        permission_set = str(created)
    grants = api.field_grants(permission_set)
    denied: list[str] = []
    for full_name in fields:
        grant = grants.get(full_name.lower())
        if grant is not None and grant.read and grant.edit:
            continue
        obj, name = full_name.split(".", 1)
        if (
            report.dry_run
            or _allowed(partial(api.fix_grant, grant) if grant else partial(api.grant_field, permission_set, obj, name))
            is not None
        ):
            report.granted.append(full_name)
        else:
            denied.append(full_name)
    user = api.own_user_id()
    assigned = api.is_assigned(permission_set, user)
    if not assigned:
        if report.dry_run or _allowed(lambda: api.assign(permission_set, user)) is not None:
            report.assigned = True
        else:
            assigned = False
    if denied or not (assigned or report.assigned):
        report.manual += permission_set_steps(denied, create=False, assign=not (assigned or report.assigned))


def _allowed(action: Callable[[], Any]) -> Any:
    """The action's result (True for None), or None when Salesforce says this user may not do it."""
    try:
        result = action()
    except PermanentError as exc:
        if not_allowed(exc):
            return None
        raise
    return True if result is None else result
