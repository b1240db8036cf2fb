"""What HubSpot knows about contacts, calls and tasks: object type ids, standard properties, groups and
association types, as the properties API and the associations guide present them.

Sources: calls guide (https://developers.hubspot.com/docs/api-reference/legacy/crm/activities/calls/guide),
tasks guide (https://developers.hubspot.com/docs/api/crm/tasks), properties guide
(https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide), associations guide
(https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide).
The standard property set is a realistic subset, not a full portal export. Object type ids: contacts 0-1 (docs);
calls 0-48 and tasks 0-27 as many public integrations hard-code them (not found in the docs themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type as the v3/v4 paths name it."""

    name: str  # plural path segment: contacts
    type_id: str  # 0-1
    singular: str  # contact
    label: str  # CONTACT, as HubSpot's messages spell it
    created: str  # createdate | hs_createdate
    modified: str  # lastmodifieddate | hs_lastmodifieddate
    default_properties: tuple[str, ...]  # returned when a read names none (search guide's table)
    required: tuple[str, ...]  # needed on create
    query_properties: tuple[str, ...]  # what a search ``query`` looks in (search guide)
    default_group: str

    @property
    def always(self) -> tuple[str, ...]:
        """Returned on every read whatever was requested."""
        return (self.created, "hs_object_id", self.modified)


CONTACTS = ObjectType(
    "contacts",
    "0-1",
    "contact",
    "CONTACT",
    "createdate",
    "lastmodifieddate",
    ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    (),
    ("firstname", "lastname", "email", "phone", "hs_additional_emails", "fax", "mobilephone", "company"),
    "contactinformation",
)
CALLS = ObjectType(
    "calls",
    "0-48",
    "call",
    "CALL",
    "hs_createdate",
    "hs_lastmodifieddate",
    ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    ("hs_timestamp",),
    ("hs_call_title", "hs_body_preview"),
    "callinformation",
)
TASKS = ObjectType(
    "tasks",
    "0-27",
    "task",
    "TASK",
    "hs_createdate",
    "hs_lastmodifieddate",
    ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    ("hs_timestamp",),
    ("hs_task_body", "hs_task_subject"),
    "taskinformation",
)
OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (CONTACTS, CALLS, TASKS)}
_ALIASES = {alias: t for t in OBJECT_TYPES.values() for alias in (t.name, t.singular, t.type_id)}


def resolve_type(raw: str) -> ObjectType | None:
    """``contacts``, ``contact`` and ``0-1`` all name contacts (the v3 and v4 APIs accept each)."""
    return _ALIASES.get(raw.lower())


# (from, to) → [(category, typeId, v3 type name)]. Directional ids from the associations guide.
ASSOCIATION_TYPES: dict[tuple[str, str], list[tuple[str, int, str]]] = {
    ("calls", "contacts"): [("HUBSPOT_DEFINED", 194, "call_to_contact")],
    ("contacts", "calls"): [("HUBSPOT_DEFINED", 193, "contact_to_call")],
    ("tasks", "contacts"): [("HUBSPOT_DEFINED", 204, "task_to_contact")],
    ("contacts", "tasks"): [("HUBSPOT_DEFINED", 203, "contact_to_task")],
}
TYPE_BY_ID: dict[int, tuple[str, str, str]] = {
    type_id: (pair[0], pair[1], name) for pair, specs in ASSOCIATION_TYPES.items() for _, type_id, name in specs
}
REVERSE_TYPE = {194: 193, 193: 194, 204: 203, 203: 204}

# type → allowed fieldType (properties guide, "Property type and fieldType values").
FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "html", "phonenumber", "file", "calculation_equation"}),
    "number": frozenset({"number", "calculation_equation"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "phone_number": frozenset({"phonenumber"}),
}

SEED_TIME = "2024-01-02T15:04:05.123Z"
BOOL_OPTIONS = [("True", "true"), ("False", "false")]


def options(pairs: list[tuple[str, str]] | list[str]) -> list[dict[str, Any]]:
    """Option objects; a bare value is its own label."""
    out = []
    for index, pair in enumerate(pairs):
        label, value = (pair, pair) if isinstance(pair, str) else pair
        out.append({"label": label, "value": value, "displayOrder": index, "hidden": False, "description": ""})
    return out


def prop(
    name: str,
    label: str,
    type_: str = "string",
    field_type: str = "text",
    *,
    group: str,
    opts: list[Any] | None = None,
    read_only: bool = False,
    calculated: bool = False,
    external: bool = False,
    unique: bool = False,
    hubspot_defined: bool = True,
    description: str = "",
) -> dict[str, Any]:
    """A property definition in the properties API's JSON shape."""
    return {
        "updatedAt": SEED_TIME,
        "createdAt": SEED_TIME,
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": description,
        "groupName": group,
        "options": options(opts or []),
        "displayOrder": -1,
        "calculated": calculated,
        "externalOptions": external,
        "hasUniqueValue": unique,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "archived": False,
    }


def _common(group: str, created: str, modified: str) -> list[dict[str, Any]]:
    return [
        prop("hs_object_id", "Record ID", "number", "number", group=group, read_only=True),
        prop(created, "Create Date", "datetime", "date", group=group),
        prop(modified, "Last Modified Date", "datetime", "date", group=group, read_only=True),
        prop("hubspot_owner_id", "Owner", "enumeration", "select", group=group, external=True),
    ]


LEAD_STATUS = [
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
]
LIFECYCLE = [
    ("Subscriber", "subscriber"),
    ("Lead", "lead"),
    ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"),
    ("Opportunity", "opportunity"),
    ("Customer", "customer"),
    ("Evangelist", "evangelist"),
    ("Other", "other"),
]
CALL_STATUS = [
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
]


def _contact_properties() -> list[dict[str, Any]]:
    g = "contactinformation"
    return [
        *_common(g, "createdate", "lastmodifieddate"),
        prop("firstname", "First Name", group=g),
        prop("lastname", "Last Name", group=g),
        prop("email", "Email", group=g, unique=True),
        prop("phone", "Phone Number", "string", "phonenumber", group=g),
        prop("mobilephone", "Mobile Phone Number", "string", "phonenumber", group=g),
        prop("fax", "Fax Number", "string", "phonenumber", group=g),
        prop("company", "Company Name", group=g),
        prop("jobtitle", "Job Title", group=g),
        prop("website", "Website URL", group=g),
        prop("address", "Street Address", group=g),
        prop("city", "City", group=g),
        prop("state", "State/Region", group=g),
        prop("zip", "Postal Code", group=g),
        prop("country", "Country/Region", group=g),
        prop("message", "Message", "string", "textarea", group=g),
        prop(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "select",
            group=g,
            opts=[(v.replace("_", " ").title(), v) for v in LEAD_STATUS],
        ),
        prop("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group=g, opts=LIFECYCLE),
        prop(
            "hs_additional_emails",
            "Additional email addresses",
            "enumeration",
            "checkbox",
            group=g,
            read_only=True,
            calculated=True,
        ),
        prop("hs_email_domain", "Email Domain", group=g, read_only=True, calculated=True),
        prop(
            "hs_searchable_calculated_phone_number",
            "Phone number (searchable)",
            group=g,
            read_only=True,
            calculated=True,
        ),
        prop(
            "hs_searchable_calculated_mobile_number",
            "Mobile phone number (searchable)",
            group=g,
            read_only=True,
            calculated=True,
        ),
        prop(
            "notes_last_contacted",
            "Last Contacted",
            "datetime",
            "date",
            group="sales_properties",
            read_only=True,
            calculated=True,
        ),
        prop(
            "notes_last_updated",
            "Last Activity Date",
            "datetime",
            "date",
            group="sales_properties",
            read_only=True,
            calculated=True,
        ),
        prop(
            "num_contacted_notes",
            "Number of times contacted",
            "number",
            "number",
            group="sales_properties",
            read_only=True,
            calculated=True,
        ),
    ]


def _call_properties() -> list[dict[str, Any]]:
    g = "callinformation"
    return [
        *_common(g, "hs_createdate", "hs_lastmodifieddate"),
        prop("hs_timestamp", "Activity date", "datetime", "date", group=g),
        prop("hs_call_title", "Call Title", group=g),
        prop("hs_call_body", "Call notes", "string", "html", group=g),
        prop("hs_body_preview", "Body preview", group=g, read_only=True, calculated=True),
        prop("hs_call_duration", "Call duration (ms)", "number", "number", group=g),
        prop(
            "hs_call_direction",
            "Call direction",
            "enumeration",
            "select",
            group=g,
            opts=[("Inbound", "INBOUND"), ("Outbound", "OUTBOUND")],
        ),
        prop("hs_call_status", "Call status", "enumeration", "select", group=g, opts=CALL_STATUS),
        # Takes the outcome's GUID (calls guide); portals define their own outcomes, so any text is accepted.
        prop("hs_call_disposition", "Call outcome", group=g),
        prop("hs_call_to_number", "To number", "string", "phonenumber", group=g),
        prop("hs_call_from_number", "From number", "string", "phonenumber", group=g),
        prop("hs_call_external_id", "External call ID", group=g),
        prop("hs_call_external_account_id", "External account ID", group=g),
        prop("hs_call_recording_url", "Recording URL", group=g),
        prop("hs_call_has_voicemail", "Has voicemail", "bool", "booleancheckbox", group=g, opts=BOOL_OPTIONS),
        prop(
            "hs_call_source",
            "Call source",
            "enumeration",
            "select",
            group=g,
            opts=[("Integrations platform", "INTEGRATIONS_PLATFORM")],
        ),
        prop("hs_activity_type", "Call and meeting type", "enumeration", "select", group=g, external=True),
        prop("hs_attachment_ids", "Attachment IDs", "enumeration", "checkbox", group=g, external=True),
    ]


def _task_properties() -> list[dict[str, Any]]:
    g = "taskinformation"
    return [
        *_common(g, "hs_createdate", "hs_lastmodifieddate"),
        prop("hs_timestamp", "Due date", "datetime", "date", group=g),
        prop("hs_task_subject", "Task Title", group=g),
        prop("hs_task_body", "Notes", "string", "html", group=g),
        prop("hs_body_preview", "Body preview", group=g, read_only=True, calculated=True),
        prop(
            "hs_task_status",
            "Task Status",
            "enumeration",
            "select",
            group=g,
            opts=[
                ("Not started", "NOT_STARTED"),
                ("Completed", "COMPLETED"),
                ("In progress", "IN_PROGRESS"),
                ("Waiting", "WAITING"),
                ("Deferred", "DEFERRED"),
            ],
        ),
        prop(
            "hs_task_priority",
            "Priority",
            "enumeration",
            "select",
            group=g,
            opts=[("None", "NONE"), ("Low", "LOW"), ("Medium", "MEDIUM"), ("High", "HIGH")],
        ),
        prop(
            "hs_task_type",
            "Task Type",
            "enumeration",
            "select",
            group=g,
            opts=[("Call", "CALL"), ("Email", "EMAIL"), ("To-do", "TODO"), ("LinkedIn", "LINKED_IN")],
        ),
        prop("hs_task_reminders", "Reminder", "enumeration", "checkbox", group=g, external=True),
        prop("hs_task_completion_date", "Completed at", "datetime", "date", group=g, read_only=True, calculated=True),
    ]


def standard_properties(object_type: str) -> list[dict[str, Any]]:
    return {"contacts": _contact_properties, "calls": _call_properties, "tasks": _task_properties}[object_type]()


def group(name: str, label: str, order: int = -1) -> dict[str, Any]:
    return {"name": name, "label": label, "displayOrder": order, "archived": False}


def standard_groups(object_type: str) -> list[dict[str, Any]]:
    """HubSpot's own default groups only: a new portal has no ``twox`` group, ``crm-setup`` creates it (the emulator
    adds it when the custom properties are seeded)."""
    groups = {
        "contacts": [
            group("contactinformation", "Contact information", 0),
            group("sales_properties", "Sales properties", 1),
        ],
        "calls": [group("callinformation", "Call information", 0)],
        "tasks": [group("taskinformation", "Task information", 0)],
    }
    return groups[object_type]


def custom_properties() -> dict[str, list[dict[str, Any]]]:
    """The custom properties the connector's default mapping writes (what ``crm-setup`` creates)."""

    def custom(name: str, label: str, type_: str, field_type: str, opts: list[Any] | None = None) -> dict[str, Any]:
        return prop(name, label, type_, field_type, group="twox", opts=opts, hubspot_defined=False)

    return {
        "contacts": [
            custom("twox_do_not_call", "2X: do not call", "bool", "booleancheckbox", BOOL_OPTIONS),
            custom("twox_wrong_number", "2X: wrong number", "bool", "booleancheckbox", BOOL_OPTIONS),
            custom("twox_number_invalid", "2X: number invalid", "bool", "booleancheckbox", BOOL_OPTIONS),
            custom("twox_last_call_outcome", "2X: last call outcome", "string", "text"),
            custom("twox_last_call_at", "2X: last call at", "datetime", "date"),
            custom("twox_callback_due", "2X: callback due", "datetime", "date"),
            custom("twox_workflow_ended", "2X: workflow ended", "bool", "booleancheckbox", BOOL_OPTIONS),
        ],
        "tasks": [custom("twox_task_key", "2X: task key", "string", "text")],
    }


SEED_CONTACTS: list[dict[str, str]] = [
    # Phones typed the way people type them; the first matches the connector's sample number +12025550143.
    {
        "firstname": "Maria",
        "lastname": "Garcia",
        "email": "maria.garcia@example.com",
        "phone": "(202) 555-0143",
        "zip": "20001",
        "lifecyclestage": "lead",
        "hs_lead_status": "NEW",
    },
    {
        "firstname": "James",
        "lastname": "Chen",
        "email": "james.chen@example.com",
        "phone": "+1 415 555 0100",
        "zip": "94103",
        "lifecyclestage": "lead",
    },
    {
        "firstname": "Priya",
        "lastname": "Patel",
        "email": "priya.patel@example.com",
        "phone": "212.555.0188",
        "zip": "10001",
        "lifecyclestage": "opportunity",
        "hs_lead_status": "OPEN",
    },
    {"firstname": "Sam", "lastname": "Okafor", "mobilephone": "(312) 555-0199", "lifecyclestage": "lead"},
]
