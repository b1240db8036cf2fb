"""The emulated org's objects and fields, and their describe output.

Field names, types, lengths and picklists follow the Object Reference pages for Contact, Lead, Task and Account
[docs: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
sforce_api_objects_task.htm (and _contact, _lead, _account)]: e.g. Task.Subject is a 255-char combobox,
Task.Description a 32,000-char textarea, TaskSubtype a restricted picklist that is create-only, CallType a
restricted picklist (Inbound/Internal/Outbound), IsClosed derived from Status. Booleans are non-nillable and
defaulted on create, as in every real describe. Only the fields a call-logging sink touches are modelled.

Deviation (per the brief): Lead.IsConverted is not createable here; the Object Reference lists it with
"Create" (orgs with the right permission may insert converted leads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.emulators.salesforce.ids import checksum_suffix

STRING_TYPES = frozenset({"string", "textarea", "phone", "email", "picklist", "combobox", "url"})
ID_TYPES = frozenset({"id", "reference"})
_SOAP = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CLOSED_TASK_STATUSES = frozenset({"Completed"})
USER_ID = "0058d00000AbCdE" + checksum_suffix("0058d00000AbCdE")  # owns every record (OwnerId, CreatedById)


@dataclass(frozen=True)
class FieldDef:
    """One field as describe reports it, plus what the emulator needs to validate writes."""

    name: str
    label: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted: bool = False
    default: Any = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    custom: bool = False
    calculated: bool = False
    name_field: bool = False
    search_scope: str | None = None  # "PHONE", "NAME" or "EMAIL": which SOSL "IN x FIELDS" group it belongs to

    @property
    def filterable(self) -> bool:
        """Long text areas can't be filtered or sorted in SOQL (Salesforce says so per field)."""
        return not (self.type == "textarea" and self.length > 255)

    def describe(self) -> dict[str, Any]:
        """This field's entry in ``sobjects/{T}/describe`` ``fields``."""
        text = self.type in STRING_TYPES or self.type in ID_TYPES
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length if text else 0,
            "byteLength": self.length * 3 if text else 0,
            "digits": 9 if self.type == "int" else 0,
            "precision": 18 if self.type == "double" else 0,
            "scale": 0,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.defaulted,
            "defaultValue": self.default if self.picklist == () else None,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "dependentPicklist": False,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship,
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "custom": self.custom,
            "calculated": self.calculated,
            "autoNumber": False,
            "unique": False,
            "externalId": False,
            "idLookup": self.type == "id",
            "nameField": self.name_field,
            "caseSensitive": False,
            "filterable": self.filterable,
            "sortable": self.filterable,
            "groupable": self.filterable,
            "htmlFormatted": False,
            "inlineHelpText": None,
            "soapType": _SOAP.get(self.type, "xsd:string"),
        }


@dataclass
class ObjectDef:
    """One sObject type: its key prefix and ordered fields (looked up case-insensitively)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)

    def add(self, *defs: FieldDef) -> None:
        """Append fields in describe order."""
        for definition in defs:
            self.fields[definition.name.lower()] = definition

    def field(self, name: str) -> FieldDef | None:
        """A field by API name, any case (Salesforce accepts ``lastname`` for ``LastName``)."""
        return self.fields.get(name.lower())

    def urls(self, version: str) -> dict[str, str]:
        """The ``urls`` map of describe and describeGlobal."""
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def describe(self, version: str) -> dict[str, Any]:
        """``GET sobjects/{T}/describe``."""
        return {
            **self.summary(version),
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [
                {"label": "All " + self.label_plural.lower(), "name": "everything"},
                {"label": "My " + self.label_plural.lower(), "name": "mine"},
            ],
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "actionOverrides": [],
        }

    def summary(self, version: str) -> dict[str, Any]:
        """The object-level keys shared by describe, describeGlobal and basic info."""
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "customSetting": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "layoutable": True,
            "triggerable": True,
            "undeletable": True,
            "mergeable": self.name in ("Contact", "Lead", "Account"),
            "replicateable": True,
            "activateable": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isSubtype": False,
            "isInterface": False,
            "deprecatedAndHidden": False,
            "urls": self.urls(version),
        }


def _system_fields(*, owner: bool = True) -> list[FieldDef]:
    read_only: dict[str, Any] = {"createable": False, "updateable": False}
    defs = [
        FieldDef("Id", "Record ID", "id", 18, nillable=False, defaulted=True, **read_only),
        FieldDef("IsDeleted", "Deleted", "boolean", nillable=False, defaulted=True, default=False, **read_only),
    ]
    if owner:
        defs.append(
            FieldDef(
                "OwnerId",
                "Owner ID",
                "reference",
                18,
                nillable=False,
                defaulted=True,
                reference_to=("User",),
                relationship="Owner",
            )
        )
    defs += [
        FieldDef("CreatedDate", "Created Date", "datetime", nillable=False, defaulted=True, **read_only),
        FieldDef(
            "CreatedById",
            "Created By ID",
            "reference",
            18,
            nillable=False,
            defaulted=True,
            reference_to=("User",),
            relationship="CreatedBy",
            **read_only,
        ),
        FieldDef("LastModifiedDate", "Last Modified Date", "datetime", nillable=False, defaulted=True, **read_only),
        FieldDef("SystemModstamp", "System Modstamp", "datetime", nillable=False, defaulted=True, **read_only),
    ]
    return defs


def _flag(name: str, label: str, *, custom: bool = False) -> FieldDef:
    return FieldDef(name, label, "boolean", nillable=False, defaulted=True, default=False, custom=custom)


def _custom_fields() -> list[FieldDef]:
    """The custom fields the connector's default Salesforce mapping writes (see mappings/salesforce.yaml)."""
    return [
        _flag("TwoX_Wrong_Number__c", "2X Wrong Number", custom=True),
        _flag("TwoX_Number_Invalid__c", "2X Number Invalid", custom=True),
        FieldDef("TwoX_Last_Call_Outcome__c", "2X Last Call Outcome", "string", 255, custom=True),
        FieldDef("TwoX_Last_Call_At__c", "2X Last Call At", "datetime", custom=True),
        FieldDef("TwoX_Callback_Due__c", "2X Callback Due", "datetime", custom=True),
        _flag("TwoX_Workflow_Ended__c", "2X Workflow Ended", custom=True),
    ]


def _person_fields(first_extra: list[FieldDef], phone_label: str) -> list[FieldDef]:
    """Name and phone fields Contact and Lead share."""
    return [
        FieldDef("FirstName", "First Name", "string", 40, search_scope="NAME"),
        FieldDef("LastName", "Last Name", "string", 80, nillable=False, search_scope="NAME"),
        FieldDef(
            "Name",
            "Full Name",
            "string",
            121,
            createable=False,
            updateable=False,
            calculated=True,
            name_field=True,
            search_scope="NAME",
        ),
        *first_extra,
        FieldDef("Phone", phone_label, "phone", 40, search_scope="PHONE"),
        FieldDef("MobilePhone", "Mobile Phone", "phone", 40, search_scope="PHONE"),
        FieldDef("Email", "Email", "email", 80, search_scope="EMAIL"),
        FieldDef("Title", "Title", "string", 128),
        _flag("DoNotCall", "Do Not Call"),
        _flag("HasOptedOutOfEmail", "Email Opt Out"),
    ]


def build_schema(*, with_custom_fields: bool = True) -> dict[str, ObjectDef]:
    """The org's objects keyed by lower-case name (sObject names are case-insensitive in URLs and SOQL)."""
    read_only: dict[str, Any] = {"createable": False, "updateable": False}
    account = ObjectDef("Account", "Account", "Accounts", "001")
    account.add(
        *_system_fields(),
        FieldDef("Name", "Account Name", "string", 255, nillable=False, name_field=True, search_scope="NAME"),
        FieldDef("Phone", "Account Phone", "phone", 40, search_scope="PHONE"),
        FieldDef("BillingPostalCode", "Billing Zip/Postal Code", "string", 20),
        FieldDef("LastActivityDate", "Last Activity", "date", **read_only),
    )

    contact = ObjectDef("Contact", "Contact", "Contacts", "003")
    contact.add(
        *_system_fields(),
        *_person_fields([], "Business Phone"),
        FieldDef("AccountId", "Account ID", "reference", 18, reference_to=("Account",), relationship="Account"),
        FieldDef("MailingPostalCode", "Mailing Zip/Postal Code", "string", 20),
        FieldDef("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCES),
        FieldDef("LastActivityDate", "Last Activity", "date", **read_only),
    )

    lead = ObjectDef("Lead", "Lead", "Leads", "00Q")
    lead.add(
        *_system_fields(),
        *_person_fields([FieldDef("Company", "Company", "string", 255, nillable=False, search_scope="NAME")], "Phone"),
        FieldDef("PostalCode", "Zip/Postal Code", "string", 20),
        FieldDef(
            "Status",
            "Status",
            "picklist",
            255,
            nillable=False,
            defaulted=True,
            default="Open - Not Contacted",
            picklist=LEAD_STATUSES,
        ),
        FieldDef("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCES),
        FieldDef("IsConverted", "Converted", "boolean", nillable=False, defaulted=True, default=False, **read_only),
        FieldDef("ConvertedDate", "Converted Date", "date", **read_only),
        FieldDef(
            "ConvertedContactId",
            "Converted Contact ID",
            "reference",
            18,
            reference_to=("Contact",),
            relationship="ConvertedContact",
            **read_only,
        ),
        FieldDef(
            "ConvertedAccountId",
            "Converted Account ID",
            "reference",
            18,
            reference_to=("Account",),
            relationship="ConvertedAccount",
            **read_only,
        ),
        FieldDef("LastActivityDate", "Last Activity", "date", **read_only),
    )
    if with_custom_fields:
        contact.add(*_custom_fields())
        lead.add(*_custom_fields())

    task = ObjectDef("Task", "Task", "Tasks", "00T")
    task.add(
        *_system_fields(),
        FieldDef("WhoId", "Name ID", "reference", 18, reference_to=("Contact", "Lead"), relationship="Who"),
        FieldDef("WhatId", "Related To ID", "reference", 18, reference_to=("Account",), relationship="What"),
        FieldDef("Subject", "Subject", "combobox", 255, picklist=("Call", "Send Letter", "Send Quote", "Other")),
        FieldDef("ActivityDate", "Due Date Only", "date"),
        FieldDef(
            "Status",
            "Status",
            "picklist",
            40,
            nillable=False,
            defaulted=True,
            default="Not Started",
            picklist=TASK_STATUSES,
        ),
        FieldDef(
            "Priority",
            "Priority",
            "picklist",
            40,
            nillable=False,
            defaulted=True,
            default="Normal",
            picklist=("High", "Normal", "Low"),
        ),
        FieldDef(
            "IsClosed", "Closed", "boolean", nillable=False, defaulted=True, default=False, calculated=True, **read_only
        ),
        FieldDef("Description", "Description", "textarea", 32000),
        FieldDef("Type", "Type", "picklist", 40, picklist=("Call", "Email", "Meeting", "Other")),
        FieldDef(
            "TaskSubtype",
            "Task Subtype",
            "picklist",
            40,
            defaulted=True,
            default="Task",
            updateable=False,
            restricted=True,
            picklist=("Task", "Email", "ListEmail", "Call", "LinkedIn", "Cadence"),
        ),
        FieldDef("CallDurationInSeconds", "Call Duration", "int"),
        FieldDef(
            "CallType", "Call Type", "picklist", 40, restricted=True, picklist=("Inbound", "Internal", "Outbound")
        ),
        FieldDef("CallDisposition", "Call Result", "string", 255),
        FieldDef("CallObject", "Call Object Identifier", "string", 255),
        FieldDef("ReminderDateTime", "Reminder Date/Time", "datetime"),
        _flag("IsReminderSet", "Reminder Set"),
        FieldDef("CompletedDateTime", "Completed Date/Time", "datetime", **read_only),
    )
    return {o.name.lower(): o for o in (account, contact, lead, task)}


def object_for_id(schema: dict[str, ObjectDef], record_id: str) -> ObjectDef | None:
    """The object whose key prefix an id carries."""
    return next((o for o in schema.values() if record_id.startswith(o.key_prefix)), None)
