"""What `crm-setup` touches in the emulated org: Tooling API custom fields, permission sets with field-level
security (FLS), the running user's permissions, and the OAuth ``userinfo`` and ``token`` endpoints.

Why FLS is modelled: a field created through the Tooling API is visible to no profile until a permission set (or
profile) grants it [docs: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/
tooling_api_objects_customfield.htm — UNVERIFIED that the docs say so in words; it is the well-known cause of
INVALID_FIELD right after an API-created field]. So a Tooling-created field enters the object's describe (and so
the write validation and SOQL, which already refuse unknown fields with INVALID_FIELD "No such column …") only
once a ``FieldPermissions`` row with ``PermissionsRead`` in a permission set assigned to the emulated user
exists; with Read but not Edit it is read-only (INVALID_FIELD_FOR_INSERT_UPDATE, as for any read-only field).

Objects and fields follow the Object Reference: PermissionSet (key prefix 0PS; Name, Label), FieldPermissions
(01k; ParentId, SobjectType, Field as ``Contact.X__c``, PermissionsRead, PermissionsEdit), PermissionSetAssignment
(0Pa; AssigneeId, PermissionSetId) [docs: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/
object_reference/sforce_api_objects_fieldpermissions.htm (and _permissionset, _permissionsetassignment)]; Tooling
``CustomField`` (00N; DeveloperName without ``__c``, TableEnumOrId, FullName, Metadata) [docs:
https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm].
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from connector.emulators.salesforce.errors import SalesforceApiError
from connector.emulators.salesforce.ids import checksum_suffix
from connector.emulators.salesforce.schema import USER_ID, FieldDef, ObjectDef, _system_fields

if TYPE_CHECKING:
    from connector.emulators.salesforce.store import Store

PERMISSIONS = frozenset({"CustomizeApplication", "ManageUsers"})
"""The running user's permissions the set-up needs: Customize Application creates fields, Manage Users (which
includes managing and assigning permission sets) writes PermissionSet, FieldPermissions and assignments."""
ORG_ID = "00D8d00000Em1Ab" + checksum_suffix("00D8d00000Em1Ab")
USERNAME = "integration@emulated-org.example"
_DEVELOPER_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]{0,38}(?<!_)$")
# UNVERIFIED: the text Salesforce gives a user without the permission; the code is the documented StatusCode.
MSG_NO_ACCESS = "insufficient access rights on object id"
# The StatusCode list: "DUPLICATE_DEVELOPER_NAME: You cannot create a custom object or custom field with a duplicate
# developer name." [docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/
# sforce_api_calls_concepts_core_data_objects.htm#statuscode]; the message below is UNVERIFIED.
MSG_DUPLICATE_FIELD = "There is already a field named {name} on {obj}."
# UNVERIFIED (shape observed for other unique keys): a second FieldPermissions/assignment for the same pair.
MSG_DUPLICATE_VALUE = "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
_FIELD_TYPES = {"Checkbox": "boolean", "Text": "string", "DateTime": "datetime", "Date": "date", "Number": "double"}


def security_objects() -> dict[str, ObjectDef]:
    """PermissionSet, FieldPermissions and PermissionSetAssignment (standard sObjects of every org)."""
    permission_set = ObjectDef("PermissionSet", "Permission Set", "Permission Sets", "0PS")
    permission_set.add(
        *_system_fields(owner=False),
        FieldDef("Name", "Name", "string", 80, nillable=False, name_field=True),
        FieldDef("Label", "Label", "string", 80, nillable=False),
        FieldDef("Description", "Description", "textarea", 255),
        FieldDef(
            "IsOwnedByProfile",
            "Is Owned by Profile",
            "boolean",
            nillable=False,
            defaulted=True,
            default=False,
            createable=False,
            updateable=False,
        ),
    )
    field_permissions = ObjectDef("FieldPermissions", "Field Permissions", "Field Permissions", "01k")
    field_permissions.add(
        *_system_fields(owner=False),
        FieldDef(
            "ParentId",
            "Parent ID",
            "reference",
            18,
            nillable=False,
            updateable=False,
            reference_to=("PermissionSet",),
            relationship="Parent",
        ),
        FieldDef("SobjectType", "Sobject Type Name", "string", 40, nillable=False, updateable=False),
        FieldDef("Field", "Field Name", "string", 80, nillable=False, updateable=False),
        FieldDef("PermissionsRead", "Read Access", "boolean", nillable=False, defaulted=True, default=False),
        FieldDef("PermissionsEdit", "Edit Access", "boolean", nillable=False, defaulted=True, default=False),
    )
    assignment = ObjectDef("PermissionSetAssignment", "Permission Set Assignment", "Permission Set Assignments", "0Pa")
    assignment.add(
        *_system_fields(owner=False),
        FieldDef(
            "AssigneeId",
            "Assignee ID",
            "reference",
            18,
            nillable=False,
            updateable=False,
            reference_to=("User",),
            relationship="Assignee",
        ),
        FieldDef(
            "PermissionSetId",
            "Permission Set ID",
            "reference",
            18,
            nillable=False,
            updateable=False,
            reference_to=("PermissionSet",),
            relationship="PermissionSet",
        ),
    )
    return {o.name.lower(): o for o in (permission_set, field_permissions, assignment)}


def tooling_objects() -> dict[str, ObjectDef]:
    """The Tooling API's CustomField, as far as ``tooling/query`` selects it."""
    custom_field = ObjectDef("CustomField", "Custom Field", "Custom Fields", "00N")
    custom_field.add(
        *_system_fields(owner=False),
        FieldDef("DeveloperName", "Developer Name", "string", 40, nillable=False),
        FieldDef("TableEnumOrId", "Table Enum or ID", "string", 40, nillable=False),
        FieldDef("NamespacePrefix", "Namespace Prefix", "string", 15),
        FieldDef("FullName", "Full Name", "string", 255),
    )
    return {"customfield": custom_field}


@dataclass
class OAuthClient:
    """A connected app (external client app) the token endpoint accepts."""

    consumer_key: str
    consumer_secret: str | None
    certificate_pem: bytes | None
    username: str
    audience: str


class Security:
    """Tooling custom fields, FLS visibility, the user's permissions and OAuth clients of one org."""

    def __init__(self, store: Store, tooling: Store) -> None:
        self.store = store
        self.tooling = tooling
        self.permissions: set[str] = set(PERMISSIONS)
        self.hidden_until_granted: dict[tuple[str, str], FieldDef] = {}
        """Fields created through the Tooling API: (object, field) lower-case → full definition."""
        self.oauth_clients: dict[str, OAuthClient] = {}
        self.userinfo_allowed = True

    # --- seeding -------------------------------------------------------------------------------------------
    def register_existing_custom_fields(self) -> None:
        """Every custom field the schema starts with is also a Tooling CustomField row (visible via profile)."""
        table = self.tooling.object("CustomField")
        assert table is not None
        for obj in list(self.store.schema.values()):
            for definition in obj.fields.values():
                if definition.custom:
                    self.tooling.insert(
                        table,
                        {
                            "DeveloperName": definition.name[:-3],
                            "TableEnumOrId": obj.name,
                            "FullName": f"{obj.name}.{definition.name}",
                        },
                    )

    # --- permission checks (Store.write_guard) ------------------------------------------------------------
    def guard(self, obj: ObjectDef, values: dict[str, Any], record: dict[str, Any] | None) -> None:
        """Refuse writes to the permission objects without Manage Users, and duplicates of their unique keys."""
        if obj.name not in ("PermissionSet", "FieldPermissions", "PermissionSetAssignment"):
            return
        if "ManageUsers" not in self.permissions:
            raise SalesforceApiError(400, "INSUFFICIENT_ACCESS_OR_READONLY", MSG_NO_ACCESS, [])
        merged = {**(record or {}), **values}
        if obj.name == "FieldPermissions":
            if merged.get("PermissionsEdit") and not merged.get("PermissionsRead"):
                # UNVERIFIED text: Edit depends on Read, as the permission set editor enforces.
                raise SalesforceApiError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Permission Edit depends on permission(s): Read",
                    ["PermissionsEdit"],
                )
            field = str(merged.get("Field") or "")
            if field.split(".")[0].lower() != str(merged.get("SobjectType") or "").lower():
                raise SalesforceApiError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Field Name: the field's object does not match Sobject Type Name",
                    ["Field"],
                )  # UNVERIFIED text
        keys = {
            "PermissionSet": ("Name",),
            "FieldPermissions": ("ParentId", "Field"),
            "PermissionSetAssignment": ("PermissionSetId", "AssigneeId"),
        }[obj.name]
        if record is None:
            for row in self.store.rows(obj):
                if all(
                    str(row.get(k) or "").lower()[: 15 if k.endswith("Id") else None]
                    == str(merged.get(k) or "").lower()[: 15 if k.endswith("Id") else None]
                    for k in keys
                ):
                    raise SalesforceApiError(400, "DUPLICATE_VALUE", MSG_DUPLICATE_VALUE, [])

    # --- Tooling API ---------------------------------------------------------------------------------------
    def create_custom_field(self, body: Any) -> dict[str, Any]:
        """POST tooling/sobjects/CustomField: ``{"FullName": "Contact.X__c", "Metadata": {type, label, …}}``."""
        if "CustomizeApplication" not in self.permissions:
            raise SalesforceApiError(400, "INSUFFICIENT_ACCESS_OR_READONLY", MSG_NO_ACCESS, [])
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize the request body")
        full_name, metadata = str(body.get("FullName") or ""), body.get("Metadata")
        obj_name, _, field_name = full_name.partition(".")
        obj = self.store.object(obj_name)
        if obj is None or not field_name.endswith("__c") or not _DEVELOPER_NAME.match(field_name[:-3]):
            # UNVERIFIED text; INVALID_FIELD for a malformed full name
            raise SalesforceApiError(400, "INVALID_FIELD", f"Invalid full name: {full_name}", ["FullName"])
        if not isinstance(metadata, dict):
            raise SalesforceApiError(
                400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"]
            )
        key = (obj.name.lower(), field_name.lower())
        if obj.field(field_name) is not None or key in self.hidden_until_granted:
            raise SalesforceApiError(
                400, "DUPLICATE_DEVELOPER_NAME", MSG_DUPLICATE_FIELD.format(name=field_name[:-3], obj=obj.name), []
            )
        definition = _field_from_metadata(field_name, metadata)
        self.hidden_until_granted[key] = definition
        table = self.tooling.object("CustomField")
        assert table is not None
        return self.tooling.insert(
            table, {"DeveloperName": field_name[:-3], "TableEnumOrId": obj.name, "FullName": f"{obj.name}.{field_name}"}
        )

    # --- field-level security ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Put each Tooling-created field into its object's describe as the user's permission sets grant it."""
        assignments, grants = self.store.object("PermissionSetAssignment"), self.store.object("FieldPermissions")
        assert assignments is not None and grants is not None
        assigned = {
            r["PermissionSetId"][:15]
            for r in self.store.rows(assignments)
            if str(r.get("AssigneeId") or "")[:15] == USER_ID[:15]
        }
        access: dict[str, tuple[bool, bool]] = {}
        for row in self.store.rows(grants):
            if str(row.get("ParentId") or "")[:15] in assigned:
                read, edit = access.get(str(row["Field"]).lower(), (False, False))
                access[str(row["Field"]).lower()] = (
                    read or bool(row["PermissionsRead"]),
                    edit or bool(row["PermissionsEdit"]),
                )
        for (obj_name, field_name), definition in self.hidden_until_granted.items():
            obj = self.store.object(obj_name)
            assert obj is not None
            read, edit = access.get(f"{obj_name}.{field_name}", (False, False))
            if not read:
                obj.fields.pop(field_name, None)
                continue
            obj.fields[field_name] = replace(definition, createable=edit, updateable=edit)
            for row in self.store.rows(obj, include_deleted=True):
                row.setdefault(definition.name, definition.default if definition.type == "boolean" else None)

    # --- OAuth ---------------------------------------------------------------------------------------------
    def userinfo(self, instance_url: str) -> dict[str, Any]:
        """GET /services/oauth2/userinfo: the OpenID Connect claims of the token's user; ``user_id`` is what set-up
        assigns the permission set to [docs: https://help.salesforce.com/s/articleView?id=
        xcloud.remoteaccess_using_userinfo_endpoint.htm]."""
        return {
            "sub": f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}",
            "user_id": USER_ID,
            "organization_id": ORG_ID,
            "preferred_username": USERNAME,
            "nickname": "integration",
            "name": "Integration User",
            "email": USERNAME,
            "email_verified": True,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": f"{instance_url}/services/data/v{{version}}/",
                "tooling_rest": f"{instance_url}/services/data/v{{version}}/tooling/",
            },
        }

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any], str | None]:
        """POST /services/oauth2/token for the client-credentials and JWT bearer grants: (status, body, session).

        Client credentials: ``grant_type=client_credentials`` with the consumer key and secret in a Basic header or
        the form [docs: https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_client_credentials
        _flow.htm]. JWT bearer: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and ``assertion``, an
        RS256 JWT with iss (consumer key), sub (username), aud (https://login.salesforce.com, or
        https://test.salesforce.com for a sandbox) and exp [docs: https://help.salesforce.com/s/articleView?id=
        xcloud.remoteaccess_oauth_jwt_flow.htm]. Errors are ``{"error", "error_description"}`` with 400; the
        descriptions are UNVERIFIED except "invalid client credentials" and "audience is invalid".
        """
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            key, secret = form.get("client_id"), form.get("client_secret")
            scheme, _, encoded = authorization.partition(" ")
            if scheme.lower() == "basic":
                try:
                    key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
                except ValueError:
                    key = secret = None
            client = self.oauth_clients.get(key or "")
            if client is None or client.consumer_secret is None or client.consumer_secret != secret:
                return 400, {"error": "invalid_client", "error_description": "invalid client credentials"}, None
            return 200, {}, client.username
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt(form.get("assertion", ""))
        return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, None

    def _jwt(self, assertion: str) -> tuple[int, dict[str, Any], str | None]:
        import jwt
        from cryptography import x509

        def invalid(error: str, description: str) -> tuple[int, dict[str, Any], str | None]:
            return 400, {"error": error, "error_description": description}, None

        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return invalid("invalid_grant", "invalid assertion")
        client = self.oauth_clients.get(str(claims.get("iss")))
        if client is None or client.certificate_pem is None:
            return invalid("invalid_client_id", "client identifier invalid")
        if claims.get("aud") != client.audience:
            return invalid("invalid_grant", "audience is invalid")
        public_key = x509.load_pem_x509_certificate(client.certificate_pem).public_key()
        try:
            jwt.decode(assertion, public_key, algorithms=["RS256"], audience=client.audience)  # type: ignore[arg-type]
        except jwt.ExpiredSignatureError:
            return invalid("invalid_grant", "expired authorization code")
        except jwt.PyJWTError:
            return invalid("invalid_grant", "invalid signature")
        if float(claims.get("exp") or 0) > time.time() + 300:
            return invalid("invalid_grant", "expiration time too far in the future")  # UNVERIFIED limit/text
        if claims.get("sub") != client.username:
            return invalid("invalid_grant", "user hasn't approved this consumer")
        return 200, {}, client.username


def _field_from_metadata(name: str, metadata: dict[str, Any]) -> FieldDef:
    """The describe definition of a new custom field, refusing what the Metadata API refuses (texts UNVERIFIED)."""
    kind, label = metadata.get("type"), metadata.get("label")
    if kind not in _FIELD_TYPES:
        raise SalesforceApiError(400, "FIELD_INTEGRITY_EXCEPTION", f"Invalid type: {kind}", ["type"])
    if not isinstance(label, str) or not label.strip() or len(label) > 40:
        raise SalesforceApiError(
            400, "FIELD_INTEGRITY_EXCEPTION", "Field Label: You must enter a value (at most 40 characters)", ["label"]
        )
    ftype, length = _FIELD_TYPES[kind], 0
    if kind == "Text":
        length = metadata.get("length") if isinstance(metadata.get("length"), int) else 0
        if not 1 <= length <= 255:
            raise SalesforceApiError(400, "FIELD_INTEGRITY_EXCEPTION", "Length: must be between 1 and 255", ["length"])
    if kind == "Checkbox":
        if str(metadata.get("defaultValue")).lower() not in ("true", "false"):
            raise SalesforceApiError(
                400, "FIELD_INTEGRITY_EXCEPTION", "Default Value: a checkbox needs true or false", ["defaultValue"]
            )
        default = str(metadata["defaultValue"]).lower() == "true"
        return FieldDef(name, label, "boolean", nillable=False, defaulted=True, default=default, custom=True)
    if kind == "Number" and not (isinstance(metadata.get("precision"), int) and isinstance(metadata.get("scale"), int)):
        raise SalesforceApiError(
            400, "FIELD_INTEGRITY_EXCEPTION", "Number fields need precision and scale", ["precision"]
        )
    return FieldDef(name, label, ftype, length, custom=True)
