"""Contact resolution helpers for the HubSpot sink: the read-your-writes cache, phone digits, several matches.

Why a cache: HubSpot's search index lags writes by "a few moments" (search guide), so a contact created for a new
number is invisible to the next event's phone search; searching again would create a duplicate. The cache also
takes the search (and the GET of a ``meta`` contact id) off the path of every later event for a known contact
(docs/hubspot.md, "Contacts").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache

from connector.errors import PermanentError
from connector.phones import national_digits, same_number

CACHE_TTL_S = 900.0
"""How long a resolved contact id is trusted without asking HubSpot again. Long against search lag (seconds),
short enough that a contact merged or deleted in HubSpot is noticed the same quarter-hour."""
CACHE_SIZE = 10_000
SEARCH_PROPERTIES = ["createdate", "lastmodifieddate", "notes_last_contacted", "hs_lastmodifieddate"]
"""What choosing among several matches needs (a phone search adds the phone fields, to confirm the match;
they are compared in memory and never logged)."""
MAX_GROUPS = 5
"""HubSpot's limit of filter groups per search."""


class ContactCache:
    """Thread-safe, size-bound, expiring: (object, phone fields, E.164) → id for phones, (object, "id", id) → id for
    ids seen. One per sink instance, shared by the threads that use it; least recently read entries go first when
    full, and an entry expires ``ttl_s`` after it was written (a read does not extend it)."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, size: int = CACHE_SIZE) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._items: TTLCache[Hashable, str] = TTLCache(maxsize=size, ttl=ttl_s, timer=time.monotonic)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: str) -> None:
        with self._lock:
            self._items[key] = value

    def forget_value(self, value: str) -> None:
        """Drop every entry pointing at a contact HubSpot no longer has (deleted, merged away)."""
        with self._lock:
            for key in [k for k, v in self._items.items() if v == value]:
                self._items.pop(key, None)


SEARCHABLE = {"phone": "hs_searchable_calculated_phone_number", "mobilephone": "hs_searchable_calculated_mobile_number"}
"""HubSpot's calculated, search-only copies of the two standard phone properties: area code + number, no country
code and no formatting (search guide, "Limits": search phone numbers without the country code,
https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm; the property names as integrations
filter on them, e.g. https://gist.github.com/atymic/1104ae32c2bfee6604e1eb6cf68c4989 — how HubSpot computes them
is UNVERIFIED beyond that). Searching them too finds a contact whose ``phone`` holds ``(202) 555-0143``."""


def phone_filter_groups(fields: Sequence[str], e164: str) -> list[list[dict[str, Any]]]:
    """One filter group per phone field and per searchable copy of it (groups are ORed), chunked to HubSpot's
    5 groups per search (one filter each, far below the 6-per-group and 18-in-all limits)."""
    digits = national_digits(e164)
    names = list(dict.fromkeys([*fields, *(SEARCHABLE[f] for f in fields if f in SEARCHABLE)]))
    groups = [{"filters": [{"propertyName": name, "operator": "EQ", "value": digits}]} for name in names]
    return [groups[i : i + MAX_GROUPS] for i in range(0, len(groups), MAX_GROUPS)]


def search_properties(fields: Sequence[str]) -> list[str]:
    """What a phone search asks for: what choosing needs, and the phone fields to confirm the match with."""
    return list(dict.fromkeys([*SEARCH_PROPERTIES, *fields]))


def same_number_records(records: list[Any], fields: Sequence[str], e164: str) -> list[Any]:
    """The search hits whose phone fields really hold ``e164`` (the shared matcher, ``connector.phones``): the
    searchable copies drop the country code, so +44 20 7946 0018 and +1 207 946 0018 would otherwise collide."""
    return [r for r in records if any(same_number((getattr(r, "properties", None) or {}).get(f), e164) for f in fields)]


def _instant(record: Any, *names: str) -> datetime:
    properties = getattr(record, "properties", None) or {}
    for name in names:
        value = properties.get(name)
        if value:
            try:
                parsed = datetime.fromisoformat(str(value))  # 3.11 reads "Z"
            except ValueError:
                if str(value).isdigit():
                    return datetime.fromtimestamp(int(value) / 1000, UTC)
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    created = getattr(record, "created_at", None)
    return created if isinstance(created, datetime) else datetime.min.replace(tzinfo=UTC)


def choose(records: list[Any], on_multiple: str) -> Any:
    """The contact a call belongs to when several share the number (the mapping's ``if_several``)."""
    if len(records) == 1:
        return records[0]
    if on_multiple == "hold":
        ids = ", ".join(sorted((str(r.id) for r in records), key=int)[:10])
        raise PermanentError(
            "several contacts share this phone number",
            code="AMBIGUOUS_CONTACT",
            crm_message=f"{len(records)} contacts match the lead's phone number (ids {ids}); merge the duplicates "
            "in HubSpot, then replay the event",
        )
    if on_multiple == "most_recently_active":
        # Newest activity first; ties go to the older record (lower id), which is stable across retries.
        return max(
            records,
            key=lambda r: (
                _instant(r, "notes_last_contacted", "lastmodifieddate", "hs_lastmodifieddate", "createdate"),
                -int(r.id),
            ),
        )
    return min(records, key=lambda r: (_instant(r, "createdate"), int(r.id)))


def hubspot_value(value: Any) -> str:
    """HubSpot property values are strings: booleans "true"/"false", None clears (""), whole floats without ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def hubspot_properties(values: dict[str, Any]) -> dict[str, str]:
    return {name: hubspot_value(value) for name, value in values.items()}
