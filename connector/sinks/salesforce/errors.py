"""Salesforce failures → the connector's SinkError classes, in one place.

Why one place: the engine decides a delivery's fate only by the class of the error (retry, wait out a limit,
dead-letter, pause the sink), so every way simple-salesforce, requests or a Composite subrequest can fail must land
in exactly one class, keeping Salesforce's own ``errorCode`` and ``message`` for the audit trail.

Classification is by ``errorCode`` first (Salesforce reuses HTTP statuses: 403 is both "daily allocation used up"
and "no permission"; UNABLE_TO_LOCK_ROW comes back as 400 or 500), then by status. Exception texts name the status,
code and fields only: Salesforce's message can quote the rejected value (STRING_TOO_LONG quotes the whole
transcript), so it goes to ``crm_message`` and never into ``str(exc)``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import requests

from connector.errors import AuthError, OutcomeUnknown, PermanentError, RateLimited, SinkError, TransientError
from connector.sinks.uncertain import never_connected

DAILY_LIMIT_WAIT_S = 900.0
"""403 REQUEST_LIMIT_EXCEEDED "TotalRequests": the rolling 24-hour allocation is used up. Nothing frees it soon and
every delivery would hit it, so the whole sink waits 15 minutes instead of burning each event's retry schedule."""
CONCURRENCY_WAIT_S = 30.0
"""REQUEST_LIMIT_EXCEEDED for concurrent long-running requests ("ConcurrentPerOrgLongTxn"): clears in seconds."""
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT", "REQUEST_RUNNING_TOO_LONG", "UNKNOWN_EXCEPTION"}
)
AUTH_CODES = frozenset(
    {
        "INVALID_SESSION_ID",
        "INVALID_AUTH_HEADER",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
        "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
    }
)
"""Codes that fail every event alike until someone fixes the credentials or the org: pause, never dead-letter."""
HALTED = "PROCESSING_HALTED"
_FAILED_BEFORE_WRITING = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def errors_of(content: Any) -> list[dict[str, Any]]:
    """Salesforce's error list (``errorCode`` in REST bodies, ``statusCode`` in collections), as dicts."""
    items = content if isinstance(content, list) else [content] if isinstance(content, dict) else []
    found = []
    for item in items:
        if isinstance(item, dict) and (item.get("errorCode") or item.get("statusCode")):
            found.append(
                {
                    "errorCode": item.get("errorCode") or item.get("statusCode"),
                    "message": str(item.get("message") or ""),
                    "fields": list(item.get("fields") or []),
                }
            )
    return found


def classify(status: int, content: Any, *, where: str) -> SinkError:
    """The SinkError for one failed Salesforce answer (a whole response or one Composite subresponse)."""
    errors = errors_of(content)
    first = next((e for e in errors if e["errorCode"] != HALTED), errors[0] if errors else None)
    code = first["errorCode"] if first else None
    message = (first["message"] if first else (content if isinstance(content, str) else "")) or f"HTTP {status}"
    fields = first["fields"] if first else []
    summary = (
        f"Salesforce answered {status}"
        + (f" {code}" if code else "")
        + f" to {where}"
        + (f" (fields: {', '.join(fields)})" if fields else "")
    )
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "crm_message": message[:4000],
        "details": [
            {"code": e["errorCode"], "message": e["message"], "fields": e["fields"]}
            for e in errors
            if e["errorCode"] != HALTED
        ],
    }
    if code == "REQUEST_LIMIT_EXCEEDED":
        wait = CONCURRENCY_WAIT_S if "Concurrent" in message else DAILY_LIMIT_WAIT_S
        return RateLimited(summary, retry_after=wait, **kwargs)
    if code in AUTH_CODES or status == 401:
        return AuthError(summary, **kwargs)
    if status == 429:
        return RateLimited(summary, retry_after=CONCURRENCY_WAIT_S, **kwargs)
    if code in TRANSIENT_CODES or status >= 500 or status == 408 or _locked_in_trigger(code, message):
        return TransientError(summary, **kwargs)
    return PermanentError(summary, **kwargs)


def _locked_in_trigger(code: str | None, message: str) -> bool:
    """A trigger or flow that could not lock a related row fails the write as CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY
    with the real cause, UNABLE_TO_LOCK_ROW, only in the message ("…first error: UNABLE_TO_LOCK_ROW, unable to
    obtain exclusive access to this record…"): the same lock contention, so the same retry. Nothing was written
    (the transaction rolled back) [docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/
    sforce_api_calls_concepts_core_data_objects.htm#statuscode; message shape UNVERIFIED beyond public reports]."""
    return code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" and "UNABLE_TO_LOCK_ROW" in message


def raise_for_composite(answer: Any, *, where: str) -> list[dict[str, Any]]:
    """The subresponses of a Composite answer; raises for the real failure among them.

    The outer status is always 200. Under allOrNone, every subrequest other than the one that failed reports
    PROCESSING_HALTED ("rolled back since another operation … failed"): those are consequences, not the cause.
    """
    responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
    if not isinstance(responses, list):
        raise TransientError(f"Salesforce answered {where} without compositeResponse")
    failed = [r for r in responses if int(r.get("httpStatusCode") or 0) >= 300]
    if failed:
        cause = next((r for r in failed if any(e["errorCode"] != HALTED for e in errors_of(r.get("body")))), failed[0])
        raise classify(int(cause["httpStatusCode"]), cause.get("body"), where=f"{where} [{cause.get('referenceId')}]")
    return responses


@contextlib.contextmanager
def translated_errors(where: str) -> Iterator[None]:
    """Run one simple-salesforce call; re-raise any failure as a SinkError (marking answers that may be lost)."""
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

    try:
        yield
    except SinkError:
        raise
    except SalesforceAuthenticationFailed as exc:
        code = getattr(exc, "code", None)
        status = code if isinstance(code, int) else None
        kind = TransientError if status is not None and status >= 500 else AuthError
        raise kind(
            f"Salesforce login failed ({code})",
            status=status,
            code=str(code) if code else None,
            crm_message=str(getattr(exc, "auth_message", "") or "")[:4000],
        ) from exc
    except SalesforceError as exc:
        error = classify(int(exc.status), exc.content, where=where)
        if int(exc.status) >= 500 and type(error) is TransientError and error.code not in _FAILED_BEFORE_WRITING:
            raise OutcomeUnknown(
                str(error), status=error.status, code=error.code, crm_message=error.crm_message
            ) from exc  # a 5xx may follow a commit
        raise error from exc
    except requests.ConnectTimeout as exc:
        raise TransientError(f"Salesforce unreachable ({where}): {exc.__class__.__name__}") from exc
    except requests.ConnectionError as exc:
        if never_connected(exc):  # refused, no route, DNS: the request never left
            raise TransientError(f"Salesforce unreachable ({where}): {exc.__class__.__name__}") from exc
        raise OutcomeUnknown(f"Salesforce unreachable ({where}): {exc.__class__.__name__}") from exc
    except requests.Timeout as exc:  # the request may have been processed
        raise OutcomeUnknown(f"Salesforce unreachable ({where}): {exc.__class__.__name__}") from exc
    except (requests.JSONDecodeError, ValueError) as exc:
        # a 2xx whose body is not JSON (a proxy's page): the request was carried out, its result is unknown
        raise OutcomeUnknown(f"Salesforce answered {where} with an unreadable body") from exc
    except requests.RequestException as exc:
        raise TransientError(f"Salesforce request failed ({where}): {exc.__class__.__name__}") from exc


SOSL_RESERVED = frozenset("?&|!{}[]()^~*:\\\"'+-")
"""SOSL's reserved characters, "? & | ! { } [ ] ( ) ^ ~ * : \\ \" ' + -", which must be backslash-escaped in a
FIND search term [docs: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
sforce_api_calls_sosl_find.htm]. SOQL quoting (``simple_salesforce.format_soql``) is a different set: it escapes
for a quoted string literal, and SOSL terms are not one."""


def sosl_term(value: str) -> str:
    """A SOSL search word with every reserved character (``SOSL_RESERVED``) backslash-escaped; the one SOSL
    escaper (SOQL values go through ``simple_salesforce.format_soql``)."""
    return "".join("\\" + c if c in SOSL_RESERVED else c for c in value)


def identifier(name: str, what: str) -> str:
    """An sObject or field API name from the mapping, refused if it could change the meaning of SOQL/SOSL/URLs."""
    if not _IDENTIFIER.match(name or ""):
        raise PermanentError(f"invalid Salesforce {what} name in the mapping: {name!r}", code="INVALID_MAPPING")
    return name


def record_id(value: str) -> str:
    """A 15/18-character record id, refused before it is put into a URL."""
    if not RECORD_ID.match(value or ""):
        raise PermanentError("the resolved contact id is not a Salesforce record id", code="MALFORMED_ID")
    return value
