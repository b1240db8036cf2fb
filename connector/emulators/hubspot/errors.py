"""HubSpot's error bodies, so clients and tests see what they would see from api.hubapi.com.

Shape (https://developers.hubspot.com/docs/api-reference/error-handling):
``{"status": "error", "message", "correlationId", "category", "subCategory"?, "errors"?: [{"message", "code",
"context"}], "context"?}``. Every body gets a fresh uuid4 ``correlationId``, echoed in the
``x-hubspot-correlation-id`` header.

Where a text below was seen in captured HubSpot responses (public issue threads, integration test fixtures) the
comment says "observed"; texts marked UNVERIFIED are this emulator's own, kept in HubSpot's shape.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

# Observed verbatim for a missing or unknown bearer token (raw 401 bodies in many integrations' logs).
MSG_AUTH = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
# Observed: 404 for a numeric id that does not exist, no category.
MSG_RESOURCE_NOT_FOUND = "resource not found"
# Observed (two spaces after the period): 404 for an id that is not numeric, with context.id and OBJECT_NOT_FOUND.
MSG_NOT_NUMERIC = "Object not found.  objectId are usually numeric."
# Observed: the 10-second burst limit and the search limit (HubSpot/hubspot-api-nodejs retries on this text).
MSG_TEN_SECONDLY = "You have reached your ten_secondly_rolling limit."
MSG_SECONDLY = "You have reached your secondly limit."
# The daily quota's 429: same shape and wording pattern as the observed SECONDLY body (HGData/mk-node-hubspot#89:
# {"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT",...,
# "policyName":"SECONDLY"}), with policyName DAILY; the message text is UNVERIFIED.
MSG_DAILY = "You have reached your daily limit."


@dataclass
class HubSpotError(Exception):
    """A non-2xx answer: raised anywhere in a handler, rendered by the dispatcher as JSON."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.status} {self.body.get('message')}"


@dataclass(frozen=True)
class PropertyIssue:
    """One entry of a ``Property values were not valid`` error."""

    name: str
    value: str
    code: str
    message: str


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_body(
    message: str,
    category: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
    sub_category: str | None = None,
) -> dict[str, Any]:
    """HubSpot's key order: status, message, correlationId, then the optional parts, category last."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id()}
    if sub_category is not None:
        body["subCategory"] = sub_category
    if errors is not None:
        body["errors"] = errors
    if context is not None:
        body["context"] = context
    if category is not None:
        body["category"] = category
    return body


def fail(status: int, message: str, category: str | None = None, **kwargs: Any) -> HubSpotError:
    return HubSpotError(status, error_body(message, category, **kwargs))


def unauthorized() -> HubSpotError:
    return fail(401, MSG_AUTH, "INVALID_AUTHENTICATION")


def not_found(raw_id: str | None = None) -> HubSpotError:
    """404 for a record: the observed non-numeric form, else the observed ``resource not found``."""
    if raw_id is not None and not raw_id.isdigit():
        return fail(404, MSG_NOT_NUMERIC, "OBJECT_NOT_FOUND", context={"id": [raw_id]})
    return fail(404, MSG_RESOURCE_NOT_FOUND)


def invalid_input(detail: str, *, column: int = 1) -> HubSpotError:
    """A body that does not fit HubSpot's input classes. Observed form: ``Invalid input JSON on line 1, column 102:
    Cannot construct instance of ...`` / ``Invalid input JSON on line 1, column 2. Some required fields were not
    set: [label, ...]`` with no category. The column is not meaningful here."""
    return fail(400, f"Invalid input JSON on line 1, column {column}: {detail}")


def missing_fields(names: list[str]) -> HubSpotError:
    joined = ", ".join(names)
    return fail(400, f"Invalid input JSON on line 1, column 2. Some required fields were not set: [{joined}]")


def validation(message: str, **kwargs: Any) -> HubSpotError:
    return fail(400, message, "VALIDATION_ERROR", **kwargs)


def property_values_invalid(issues: list[PropertyIssue]) -> HubSpotError:
    """Observed: ``message`` embeds a compact JSON list of validation results; ``errors[]`` repeats each with
    ``code`` and ``context.propertyName`` (e.g. INVALID_OPTION, PROPERTY_DOESNT_EXIST, INVALID_INTEGER)."""
    embedded = [
        {
            "isValid": False,
            "message": issue.message,
            "error": issue.code,
            "name": issue.name,
            "localizedErrorMessage": issue.message,
        }
        for issue in issues
    ]
    message = "Property values were not valid: " + json.dumps(embedded, separators=(",", ":"), ensure_ascii=False)
    errors = [
        {"message": issue.message, "code": issue.code, "context": {"propertyName": [issue.name]}} for issue in issues
    ]
    return validation(message, errors=errors)


def required_missing(object_label: str, names: list[str]) -> HubSpotError:
    """Observed: ``Error creating TICKET. Some required properties were not set.`` with context.properties."""
    return validation(
        f"Error creating {object_label}. Some required properties were not set.", context={"properties": names}
    )


def contact_exists(existing_id: str) -> HubSpotError:
    """Observed 409 on a create whose email another contact already has; integrations parse the id out of it."""
    return fail(409, f"Contact already exists. Existing ID: {existing_id}", "CONFLICT")


def associations_invalid(context: dict[str, list[str]]) -> HubSpotError:
    """Observed: ``One or more associations are invalid`` with context INVALID_OBJECT_IDS
    (``["CONTACT=424242 is not valid"]``) or INVALID_ASSOCIATION_TYPE_ID + associationSpec."""
    return validation("One or more associations are invalid", context=context)


def rate_limited(policy: str, *, headers: dict[str, str] | None = None) -> HubSpotError:
    """Observed 429 bodies: ``{"status","message","errorType":"RATE_LIMIT","correlationId","policyName"}`` (newer
    ones add ``groupName``; no ``category``). HubSpot does not promise a Retry-After header on them."""
    message = {"TEN_SECONDLY_ROLLING": MSG_TEN_SECONDLY, "DAILY": MSG_DAILY}.get(policy, MSG_SECONDLY)
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
    }
    if policy == "TEN_SECONDLY_ROLLING":
        body["groupName"] = "publicapi:private_app-api-calls-ten-secondly:1000001:20000001"
    return HubSpotError(429, body, dict(headers or {}))


# Bodies for statuses injected with fail_next. HubSpot documents 423 (locked: wait 2 s), 429, 477 (migration,
# honour Retry-After), 502/504 (timeouts) and 503 (unavailable) without fixed bodies: these texts are UNVERIFIED.
_INJECTED: dict[int, tuple[str, str]] = {
    423: ("The resource is locked; wait at least 2 seconds and retry.", "LOCKED"),
    477: ("This portal is being migrated; retry later.", "MIGRATION_IN_PROGRESS"),
    500: ("internal error", "INTERNAL_ERROR"),
    502: ("Bad gateway: the request timed out upstream.", "BAD_GATEWAY"),
    503: ("Service temporarily unavailable.", "SERVICE_UNAVAILABLE"),
    504: ("Gateway timeout.", "GATEWAY_TIMEOUT"),
}


def injected(status: int, retry_after: float | None) -> HubSpotError:
    """The answer for one ``fail_next`` rule."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        # HTTP's delay-seconds is a whole number (RFC 9110 §10.2.3); urllib3 rejects "0.5" with InvalidHeader.
        headers["Retry-After"] = str(math.ceil(retry_after))
    if status == 429:
        error = rate_limited("TEN_SECONDLY_ROLLING")
        error.headers.update(headers)
        return error
    message, category = _INJECTED.get(status, (f"Injected failure with status {status}.", "INJECTED"))
    return HubSpotError(status, error_body(message, category), headers)


def internal_error() -> HubSpotError:
    return HubSpotError(500, error_body("internal error", "INTERNAL_ERROR"))
