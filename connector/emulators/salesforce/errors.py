"""Salesforce REST error bodies, so clients see what they would see from a real org.

REST errors are a JSON **array** of ``{"message", "errorCode", "fields"?}`` (``fields`` may be absent)
[docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm]. sObject
Collections report per-record errors as ``{"statusCode", "message", "fields"}`` instead
[docs: REST API Developer Guide, "sObject Collections", Create/Update examples].

Texts marked "observed" below were seen verbatim in captured Salesforce responses (public integration code,
client test fixtures); texts marked UNVERIFIED are this emulator's own, kept in Salesforce's shape.
"""

from __future__ import annotations

from typing import Any

# Observed: the body every 401 carries; simple-salesforce >= 1.12.3 keys its session refresh on this errorCode.
MSG_SESSION = "Session expired or invalid"
# Observed: 403 once the org's rolling 24 h allocation is used up.
MSG_LIMIT = "TotalRequests Limit exceeded."
# Observed: 404 for an unknown record, sObject or resource.
MSG_NOT_FOUND = "The requested resource does not exist"
# Observed (CumulusCI, salesforce/revoman constants): siblings of a failed subrequest under allOrNone.
MSG_ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."
# Documented (sObject Collections examples): successes of an allOrNone collection that had a failure.
MSG_COLLECTION_ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone header"
)


class SalesforceApiError(Exception):
    """A non-2xx answer, raised anywhere in a handler and rendered by the dispatcher.

    ``fields=None`` omits the key (as Salesforce does for session, limit and not-found errors).
    """

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        """The REST error array."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]

    def collection_error(self) -> dict[str, Any]:
        """The per-record error of sObject Collections (``statusCode``, never ``errorCode``)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields or [])}


def not_found() -> SalesforceApiError:
    """404 for an unknown record, type or resource."""
    return SalesforceApiError(404, "NOT_FOUND", MSG_NOT_FOUND)


def json_parser_error(message: str) -> SalesforceApiError:
    """400 for a body Salesforce's JSON deserializer refuses (bad JSON, wrong value type)."""
    return SalesforceApiError(400, "JSON_PARSER_ERROR", message)


def method_not_allowed(method: str, allowed: str) -> SalesforceApiError:
    """405; text modelled on observed 'HTTP Method 'X' not allowed. Allowed are ...' bodies."""
    return SalesforceApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


def query_error(error_code: str, text: str, offset: int, detail: str) -> SalesforceApiError:
    """A SOQL/SOSL error in Salesforce's shape: the query line, a caret, ``ERROR at Row:R:Column:C``, detail.

    Observed shape: "\\nSELECT Status_Date__c FROM X\\n       ^\\nERROR at Row:1:Column:8\\nNo such column ...".
    """
    offset = max(0, min(offset, len(text)))
    row = text.count("\n", 0, offset) + 1
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    column = offset - line_start + 1
    message = f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"
    return SalesforceApiError(400, error_code, message)
