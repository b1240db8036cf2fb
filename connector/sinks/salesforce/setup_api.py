"""The few Salesforce requests `crm-setup` makes, through simple-salesforce on the sink's own connection.

Why REST only (no Metadata API SOAP client): a custom field can be created with one REST call to the Tooling API's
``CustomField`` sObject, ``POST …/tooling/sobjects/CustomField`` with ``{"FullName": "Contact.X__c", "Metadata":
{type, label, length, …}}`` [docs: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/
tooling_api_objects_customfield.htm — Metadata carries the Metadata API CustomField fields: https://developer.
salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm]; permission sets, field permissions and
assignments are ordinary sObjects (``PermissionSet``, ``FieldPermissions``, ``PermissionSetAssignment``) [docs:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
sforce_api_objects_fieldpermissions.htm]; the connector's own user id comes from ``/services/oauth2/userinfo``
(``user_id``) [docs: https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_using_userinfo_endpoint.htm].

Every call goes through ``SalesforceConnection.call``, so failures arrive as the sink's SinkError classes with
Salesforce's errorCode kept; the caller decides which ones mean "not allowed" (manual steps) and which stop set-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simple_salesforce.format import format_soql

from connector.errors import AuthError, PermanentError
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.errors import identifier, record_id


@dataclass(frozen=True)
class FieldGrant:
    """One FieldPermissions row of the connector's permission set."""

    id: str
    read: bool
    edit: bool


class SalesforceSetupApi:
    """Set-up requests on one open connection (the caller opens and closes it)."""

    def __init__(self, connection: SalesforceConnection) -> None:
        self.connection = connection

    def existing_custom_fields(self, objects: list[str]) -> set[str]:
        """``object.field__c`` (lower case) of every custom field on these objects, whether this user can see it
        or not (describe shows only fields the user has field-level security for). Tooling API query on
        CustomField: DeveloperName has no ``__c``; TableEnumOrId is the name of a standard object."""
        soql = format_soql(
            "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField WHERE TableEnumOrId IN {names}",
            names=[identifier(o, "sObject") for o in objects],
        )
        answer = self.connection.call(
            lambda sf: sf.toolingexecute("query/", params={"q": soql}), where="crm-setup: tooling query CustomField"
        )
        return {f"{r['TableEnumOrId']}.{r['DeveloperName']}__c".lower() for r in (answer or {}).get("records") or []}

    def create_field(self, full_name: str, metadata: dict[str, Any]) -> None:
        """Create one custom field (Tooling API); raises the SinkError Salesforce's refusal maps to."""
        body = {"FullName": full_name, "Metadata": metadata}
        self.connection.call(
            lambda sf: sf.toolingexecute("sobjects/CustomField/", method="POST", data=body),
            where=f"crm-setup: create field {full_name}",
        )

    def permission_set_id(self, name: str) -> str | None:
        soql = format_soql("SELECT Id FROM PermissionSet WHERE Name = {name}", name=name)
        records = self.connection.call(lambda sf: sf.query(soql), where="crm-setup: find permission set")["records"]
        return str(records[0]["Id"]) if records else None

    def create_permission_set(self, name: str, label: str, description: str) -> str:
        body = {"Name": name, "Label": label, "Description": description}
        answer = self.connection.call(
            lambda sf: sf.PermissionSet.create(body), where="crm-setup: create permission set"
        )
        return str(answer["id"])

    def field_grants(self, permission_set_id: str) -> dict[str, FieldGrant]:
        """The set's field permissions by ``Object.Field`` (lower case)."""
        soql = format_soql(
            "SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE ParentId = {parent}",
            parent=record_id(permission_set_id),
        )
        records = self.connection.call(lambda sf: sf.query_all(soql), where="crm-setup: read field permissions")
        return {
            str(r["Field"]).lower(): FieldGrant(str(r["Id"]), bool(r["PermissionsRead"]), bool(r["PermissionsEdit"]))
            for r in records["records"]
        }

    def grant_field(self, permission_set_id: str, sobject: str, field: str) -> None:
        """Read and edit access to ``sobject.field`` in the set (field-level security)."""
        body = {
            "ParentId": permission_set_id,
            "SobjectType": sobject,
            "Field": f"{sobject}.{field}",
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
        self.connection.call(lambda sf: sf.FieldPermissions.create(body), where="crm-setup: grant field access")

    def fix_grant(self, grant: FieldGrant) -> None:
        body = {"PermissionsRead": True, "PermissionsEdit": True}
        self.connection.call(
            lambda sf: sf.FieldPermissions.update(record_id(grant.id), body), where="crm-setup: fix field access"
        )

    def own_user_id(self) -> str:
        """The id of the user the connector's credentials act as: ``userinfo`` needs an OAuth token with an
        identity scope (UNVERIFIED which exactly), so a refusal falls back to the Connect REST API's
        ``chatter/users/me`` (``id``) [docs: https://developer.salesforce.com/docs/atlas.en-us.chatterapi.meta/
        chatterapi/connect_resources_users_specific.htm]."""
        try:
            answer = self.connection.call(lambda sf: sf.oauth2("userinfo"), where="crm-setup: userinfo")
            return record_id(str((answer or {}).get("user_id") or ""))
        except (PermanentError, AuthError):
            me = self.connection.call(lambda sf: sf.restful("chatter/users/me"), where="crm-setup: users/me")
            return record_id(str((me or {}).get("id") or ""))

    def is_assigned(self, permission_set_id: str, user_id: str) -> bool:
        soql = format_soql(
            "SELECT Id FROM PermissionSetAssignment WHERE PermissionSetId = {parent} AND AssigneeId = {user}",
            parent=record_id(permission_set_id),
            user=record_id(user_id),
        )
        answer = self.connection.call(lambda sf: sf.query(soql), where="crm-setup: find assignment")
        return bool(answer["records"])

    def assign(self, permission_set_id: str, user_id: str) -> None:
        body = {"PermissionSetId": permission_set_id, "AssigneeId": user_id}
        self.connection.call(
            lambda sf: sf.PermissionSetAssignment.create(body), where="crm-setup: assign permission set"
        )
