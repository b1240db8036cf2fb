"""HubSpot failures → the connector's SinkError classes, in one place (``translated_errors``).

Why one place: the engine decides a delivery's fate only by the class of the error (retry, wait out a rate limit,
dead-letter, pause the sink), so every way the SDK or urllib3 can fail must land in exactly one class, with
HubSpot's own ``message`` and error code kept for the audit trail.

hubspot-api-client v12 facts this relies on (see the HubSpot emulator tests): every generated sub-package has its
OWN ``ApiException`` tree with no shared base class (``hubspot.crm.objects.ApiException`` is not
``hubspot.crm.associations.v4.ApiException``), each carrying ``.status``, ``.body`` (a str) and ``.headers``;
network failures are not wrapped and surface as urllib3 exceptions.

A failure after which HubSpot may have applied the write (a lost answer, a 5xx) is ``OutcomeUnknown``, the model
every sink shares (``connector.sinks.uncertain``); a request that never left or was refused is never that.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import urllib3.exceptions

from connector.errors import (
    AuthError,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    SinkError,
    StaleContact,
    TransientError,
)
from connector.sinks.retry_after import retry_after_header
from connector.sinks.uncertain import never_connected

DEFAULT_WINDOW_S = 10.0
"""HubSpot's burst window when a 429 says nothing else (X-HubSpot-RateLimit-Interval-Milliseconds = 10000)."""
SECONDLY_WAIT_S = 1.0
"""The search API's own limit is per second."""
DAILY_MARGIN_S = 60.0
"""Waited past the daily reset, so the first request after the pause does not race HubSpot's own clock."""
LOCKED_WAIT_S = 2.0
"""423 Locked: HubSpot asks to wait at least 2 seconds."""
_TRANSIENT = frozenset({408, 423, 477})
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


@lru_cache(maxsize=1)
def api_exception_types() -> tuple[type[BaseException], ...]:
    """The ``ApiException`` class of every SDK module the sink may call (imported lazily: vendor SDKs load in open)."""
    from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
    from hubspot.crm.contacts import ApiException as ContactsApiException
    from hubspot.crm.objects import ApiException as ObjectsApiException
    from hubspot.crm.objects.calls import ApiException as CallsApiException
    from hubspot.crm.objects.tasks import ApiException as TasksApiException
    from hubspot.crm.properties import ApiException as PropertiesApiException

    return (
        ObjectsApiException,
        AssociationsApiException,
        ContactsApiException,
        CallsApiException,
        TasksApiException,
        PropertiesApiException,
    )


@contextlib.contextmanager
def translated_errors(account_zone: str | None = None) -> Iterator[None]:
    """Run one SDK call; re-raise any failure as TransientError / RateLimited / PermanentError / AuthError.

    ``account_zone``: the portal's time zone, where the daily limit resets (see ``until_daily_reset``)."""
    try:
        yield
    except SinkError:
        raise
    except api_exception_types() as exc:
        status = int(getattr(exc, "status", 0) or 0)
        raise classify(
            status, getattr(exc, "body", None), getattr(exc, "headers", None), account_zone=account_zone
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        kind = TransientError if never_connected(exc) else OutcomeUnknown
        raise kind(f"HubSpot unreachable: {_transport_kind(exc)}") from exc


def classify(status: int, raw_body: Any, headers: Any, *, account_zone: str | None = None) -> SinkError:
    """The SinkError for one non-2xx HubSpot answer (``status`` 0: the SDK's wrapped TLS failure)."""
    body = _json(raw_body)
    message = str(body.get("message") or (raw_body if isinstance(raw_body, str) else "") or f"HTTP {status}")
    details = _context_details(body)
    message = (f"{message} ({'; '.join(details)})" if details else message)[:4000]
    code = _code(body)
    summary = f"HubSpot answered {status}" + (f" {code}" if code else "")
    kwargs: dict[str, Any] = {
        "status": status or None,
        "code": code,
        "crm_message": message,
        "details": _error_items(body),
    }
    if status in (401, 403):
        # 403 is MISSING_SCOPES (or a portal without access to the object): a configuration problem that retrying
        # cannot fix but that fails every event alike, so pause the sink instead of dead-lettering them all.
        return AuthError(summary, **kwargs)
    if status == 429:
        return RateLimited(summary, retry_after=_rate_limit_wait(body, headers, account_zone), **kwargs)
    if code == "INVALID_OBJECT_IDS" and "CONTACT" in message.upper():
        # An association to a contact that no longer exists (deleted or merged after we cached its id).
        return StaleContact(summary, **kwargs)
    if status in _TRANSIENT:  # refused before any write
        wait = retry_after_header(headers)
        if wait is None and status == 423:
            wait = LOCKED_WAIT_S
        return TransientError(summary, retry_after=wait, **kwargs)
    if status == 0 or status >= 500:  # 502/504 are gateway timeouts: HubSpot may have written
        return OutcomeUnknown(summary, retry_after=retry_after_header(headers), **kwargs)
    return PermanentError(summary, **kwargs)


def existing_id(error: SinkError) -> str | None:
    """The id in HubSpot's 409 ``Contact already exists. Existing ID: N`` (integrations parse it the same way)."""
    if error.status != 409 or not error.crm_message:
        return None
    found = _EXISTING_ID.search(error.crm_message)
    return found.group(1) if found else None


def _json(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _code(body: dict[str, Any]) -> str | None:
    """The most specific code HubSpot gave: an upper-case ``context`` key (INVALID_OBJECT_IDS), else
    ``errors[0].code`` (PROPERTY_DOESNT_EXIST…), else the category, else the rate-limit policy (429 bodies carry
    ``policyName``/``errorType`` and no category)."""
    context = body.get("context")
    if isinstance(context, dict):
        upper = [key for key in context if key.isupper()]
        if upper:
            return str(upper[0])
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and item.get("code"):
                return str(item["code"])
    for key in ("category", "policyName", "errorType", "subCategory"):
        if body.get(key):
            return str(body[key])
    return None


def _error_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``errors[]`` as ``{"code", "message", "fields"}``: HubSpot names each refused property in
    ``errors[].context.propertyName`` (e.g. PROPERTY_DOESNT_EXIST, INVALID_OPTION), complete however long the
    message embedding them all gets."""
    items = body.get("errors")
    found: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        context = item.get("context") if isinstance(item.get("context"), dict) else {}
        names = context.get("propertyName") or []
        found.append(
            {
                "code": str(item.get("code") or ""),
                "message": str(item.get("message") or ""),
                "fields": [str(n) for n in (names if isinstance(names, list) else [names])],
            }
        )
    return found


def _context_details(body: dict[str, Any]) -> list[str]:
    """HubSpot puts the specifics of some errors only in ``context`` (``INVALID_OBJECT_IDS: ["CONTACT=7 is not
    valid"]``): ids and names, no personal data, and exactly what an operator needs to act."""
    context = body.get("context")
    if not isinstance(context, dict):
        return []
    return [
        f"{key}: {', '.join(str(v) for v in values[:10])}"
        for key, values in context.items()
        if key.isupper() and isinstance(values, list)
    ]


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is None and isinstance(headers, dict):  # a plain dict is case-sensitive
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    return None if value is None else str(value)


def until_daily_reset(now: datetime, account_zone: str | None) -> float:
    """Seconds until HubSpot resets the daily limit, plus a margin.

    "The daily limits reset at midnight based on the time zone setting of the HubSpot account"
    (https://developers.hubspot.com/apisbytier; confirmed by a HubSpot employee in
    https://integrate.hubspot.com/t/daily-limit-when-is-the-next-day/2101). With the zone configured
    (``account_time_zone``), the pause ends just after the next local midnight (DST-aware). Without it — the API
    does not say, and the header ``X-HubSpot-RateLimit-Daily-Remaining`` gives no reset time — the conservative
    choice is the next full UTC hour: every whole-hour zone's midnight falls on one, so the sink never waits past a
    reset by more than an hour (half-hour zones: 30 minutes more), at the cost of at most one refused request an
    hour while the quota stays spent — never a retry storm. UNVERIFIED: that the reset happens on the minute."""
    if account_zone:
        zone = ZoneInfo(account_zone)
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
        return max((midnight - now).total_seconds(), 0.0) + DAILY_MARGIN_S
    next_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (next_hour - now).total_seconds() + DAILY_MARGIN_S


def _rate_limit_wait(body: dict[str, Any], headers: Any, account_zone: str | None = None) -> float:
    """Retry-After when sent (HubSpot does not promise one); else by policy: the search limit is per second, the
    daily quota until its reset (``until_daily_reset``), the burst limit one window
    (``X-HubSpot-RateLimit-Interval-Milliseconds``, 10 s)."""
    explicit = retry_after_header(headers)
    if explicit is not None:
        return explicit
    policy = str(body.get("policyName") or "").upper()
    message = str(body.get("message") or "").lower()
    if policy == "SECONDLY" or "secondly limit" in message:
        return SECONDLY_WAIT_S
    if policy == "DAILY" or "daily" in message:
        return until_daily_reset(datetime.now(UTC), account_zone)
    interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
    try:
        return float(interval) / 1000.0 if interval else DEFAULT_WINDOW_S
    except ValueError:
        return DEFAULT_WINDOW_S


def _transport_kind(exc: BaseException) -> str:
    """A short, data-free description of a network failure (MaxRetryError wraps the real reason)."""
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else None
    return type(reason or exc).__name__
