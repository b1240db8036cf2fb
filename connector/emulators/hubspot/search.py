"""``POST /crm/v3/objects/{type}/search``, following the search guide
(https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm):

- ``filterGroups`` are ORed, the filters inside one group ANDed; at most 5 groups, 6 filters per group and 18
  filters in all (the guide's "Limits"; an Aug-2024 changelog announced higher limits, the stricter ones are kept
  so a client that fits here fits everywhere). A top-level ``filters`` list counts as one more group.
- Operators EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN.
  Text compares case-insensitively, enumerations case-sensitively; IN/NOT_IN on text lower-case the stored value
  only, so their ``values`` must be lower-case to match (guide). ``*`` is a wildcard in CONTAINS_TOKEN.
- ``phone``/``mobilephone`` (and their ``hs_searchable_calculated_*`` copies) compare through the national-number
  reduction of ``phone_key``, with ``EQ`` and ``IN`` alike (what real ``IN`` does on phone properties is
  UNVERIFIED; the sink confirms every hit with its own matcher either way). ``IN`` takes at most 100 values
  (UNVERIFIED, see ``MAX_IN_VALUES``).
- The pseudo-property ``associations.{type}`` EQ an id finds records associated with that record.
- One sort (a string ``"-createdate"`` or ``{"propertyName","direction"}``); default: creation order. ``limit``
  defaults to 10, at most 200; ``after`` is an offset string; no paging beyond 10,000 results.
- Archived records never appear; records written less than ``search_lag_s`` ago appear as they were before.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Any

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.schema import ObjectType, resolve_type
from connector.emulators.hubspot.store import Record, Store
from connector.emulators.hubspot.validation import parse_instant, phone_key

OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
MAX_GROUPS, MAX_PER_GROUP, MAX_FILTERS = 5, 6, 18
MAX_IN_VALUES = 100
"""Values per IN/NOT_IN filter: the search guide gives no number (UNVERIFIED); 100 is the bound the sink keeps to
(``connector.sinks.hubspot.resolve.IN_VALUES_MAX``), enforced so a client sending more finds out here."""
DEFAULT_LIMIT, MAX_LIMIT, MAX_RESULTS = 10, 200, 10_000
_PHONES = frozenset(
    {"phone", "mobilephone", "hs_searchable_calculated_phone_number", "hs_searchable_calculated_mobile_number"}
)
_FILTER_CLASS = "com.hubspot.inbounddb.publicobject.core.v3.search.Filter"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def search(store: Store, otype: ObjectType, body: Any, lag_s: float) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise err.invalid_input("Cannot deserialize value of type `PublicObjectSearchRequest` from a non-object")
    groups = _groups(body)
    limit, offset = _paging(body)
    definitions = store.properties[otype.name]
    names = body.get("properties") or None
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise err.invalid_input("Cannot deserialize `properties`: expected an array of strings")
    query = body.get("query")
    matches = []
    for record, props in store.indexed(otype, lag_s):
        if groups and not any(all(_match(store, record, props, definitions, f) for f in g) for g in groups):
            continue
        if query and not _query_match(otype, props, str(query)):
            continue
        matches.append((record, props))
    matches = _sort(matches, body.get("sorts"), definitions)
    page = matches[offset : offset + limit]
    result: dict[str, Any] = {
        "total": len(matches),
        "results": [store.view(record, names, props=props) for record, props in page],
    }
    if offset + limit < len(matches):
        result["paging"] = {"next": {"after": str(offset + limit)}}
    return result


def _groups(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list):
        raise err.invalid_input("Cannot deserialize `filterGroups`: expected an array")
    groups = []
    for group in raw_groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise err.missing_fields(["filters"])
        groups.append(filters)
    if isinstance(body.get("filters"), list) and body["filters"]:
        groups.append(body["filters"])
    # Limit texts are UNVERIFIED; the numbers are the search guide's.
    if len(groups) > MAX_GROUPS:
        raise err.validation(f"Too many filter groups: {len(groups)}. The maximum is {MAX_GROUPS}.")
    for filters in groups:
        if len(filters) > MAX_PER_GROUP:
            raise err.validation(f"Too many filters in a filter group: {len(filters)}. The maximum is {MAX_PER_GROUP}.")
    total = sum(len(filters) for filters in groups)
    if total > MAX_FILTERS:
        raise err.validation(f"Too many filters: {total}. The maximum is {MAX_FILTERS} across all filter groups.")
    for filters in groups:
        for item in filters:
            _check_filter(item)
    return groups


def _check_filter(item: Any) -> None:
    if not isinstance(item, dict) or not item.get("propertyName") or not item.get("operator"):
        raise err.missing_fields(["propertyName", "operator"])
    operator = item["operator"]
    if operator not in OPERATORS:
        raise err.invalid_input(f'Cannot deserialize value of type `FilterOperator` from String "{operator}"')
    if operator == "BETWEEN" and item.get("highValue") is None:
        # Observed verbatim (HubSpot/hubspot-api-nodejs#128), without a category.
        raise err.invalid_input(
            f"Cannot construct instance of `{_FILTER_CLASS}`, problem: operator BETWEEN requires a highValue",
            column=102,
        )
    if operator in ("IN", "NOT_IN") and not isinstance(item.get("values"), list):
        raise err.invalid_input(
            f"Cannot construct instance of `{_FILTER_CLASS}`, problem: operator {operator} requires values"
        )
    if operator in ("IN", "NOT_IN") and len(item["values"]) > MAX_IN_VALUES:
        raise err.validation(
            f"Too many values in an {operator} filter: {len(item['values'])}. The maximum is {MAX_IN_VALUES}."
        )  # UNVERIFIED: number and text (see MAX_IN_VALUES)


def _paging(body: dict[str, Any]) -> tuple[int, int]:
    raw_limit, raw_after = body.get("limit"), body.get("after")
    try:
        limit = DEFAULT_LIMIT if raw_limit is None else int(raw_limit)
        offset = 0 if raw_after in (None, "") else int(str(raw_after))
    except ValueError:
        raise err.invalid_input("Cannot deserialize `limit`/`after`: expected an integer") from None
    if limit < 0 or limit > MAX_LIMIT:
        raise err.validation(f"limit must be between 0 and {MAX_LIMIT}, got {limit}")  # UNVERIFIED text
    if offset < 0 or offset + limit > MAX_RESULTS:
        raise err.validation(f"Cannot page beyond {MAX_RESULTS} results (after={offset}, limit={limit})")
    return limit, offset


def _kind(name: str, definition: dict[str, Any] | None) -> str:
    if name in _PHONES:
        return "phone"
    if definition is None:
        return "string"
    type_ = definition["type"]
    if type_ == "number":
        return "number"
    if type_ in ("datetime", "date"):
        return "time"
    if type_ == "enumeration":
        return "enum"
    return "bool" if type_ == "bool" else "string"


def _key(kind: str, text: str) -> Any:
    """A comparable form of a stored or filter value, or None when it cannot be compared in that kind."""
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return None
    if kind == "time":
        instant = parse_instant(text)
        return None if instant is None else instant.timestamp()
    if kind == "phone":
        return _phone_key(text)
    if kind == "enum":
        return text
    return text.casefold()


def _match(store: Store, record: Record, props: dict[str, str], definitions: dict[str, Any], item: dict) -> bool:
    name, operator = item["propertyName"], item["operator"]
    if name.startswith("associations."):
        target = resolve_type(name.partition(".")[2])
        linked = set(store.targets(record.type.name, record.id, target.name)) if target else set()
        values = [str(v) for v in item.get("values") or [item.get("value")]]
        hit = any(v in linked for v in values)
        return not hit if operator in ("NEQ", "NOT_IN") else hit
    stored = props.get(name) or None
    if operator == "HAS_PROPERTY":
        return stored is not None
    if operator == "NOT_HAS_PROPERTY":
        return stored is None
    if operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN"):
        positive = {"NEQ": "EQ", "NOT_IN": "IN", "NOT_CONTAINS_TOKEN": "CONTAINS_TOKEN"}[operator]
        return stored is None or not _positive(positive, name, stored, definitions.get(name), item)
    return stored is not None and _positive(operator, name, stored, definitions.get(name), item)


def _positive(operator: str, name: str, stored: str, definition: dict[str, Any] | None, item: dict) -> bool:
    kind = _kind(name, definition)
    multi = definition is not None and definition.get("fieldType") == "checkbox"
    stored_keys = [_key(kind, part) for part in (stored.split(";") if multi else [stored])]
    if operator == "CONTAINS_TOKEN":
        return _contains_token(stored, str(item.get("value", "")))
    if operator == "IN":
        values = [str(v) for v in item.get("values", [])]
        if kind == "string":  # the stored value is lower-cased, the values are not (search guide)
            return stored.lower() in values
        wanted = item.get(_WANTED)
        if wanted is None:  # once per filter, not once per record
            wanted = item[_WANTED] = {_key(kind, v) for v in values}
        return any(k is not None and k in wanted for k in stored_keys)
    value = _key(kind, str(item.get("value", "")))
    if operator == "EQ":
        return value is not None and value in stored_keys
    if value is None:
        return False
    high = _key(kind, str(item.get("highValue", ""))) if operator == "BETWEEN" else None
    for current in stored_keys:
        if current is None:
            continue
        try:
            if operator == "BETWEEN" and high is not None and value <= current <= high:
                return True
            if (
                operator == "LT"
                and current < value
                or operator == "LTE"
                and current <= value
                or operator == "GT"
                and current > value
                or operator == "GTE"
                and current >= value
            ):
                return True
        except TypeError:
            continue
    return False


_WANTED = "\0wanted"
"""Where an IN filter's comparable values are kept for the rest of one search (the parsed request is private)."""


@lru_cache(maxsize=65_536)
def _phone_key(text: str) -> str | None:
    """``phone_key``, remembered: a batched search compares every stored phone against many values."""
    return phone_key(text) or None


def _contains_token(stored: str, wanted: str) -> bool:
    """Tokens split on whitespace and punctuation; ``*`` matches within the whole value or one token."""
    wanted = wanted.casefold().strip()
    if not wanted:
        return False
    text = stored.casefold()
    tokens = _TOKEN.findall(text)
    if "*" in wanted:
        return fnmatch.fnmatchcase(text, wanted) or any(fnmatch.fnmatchcase(t, wanted) for t in tokens)
    return all(token in tokens for token in _TOKEN.findall(wanted))


def _query_match(otype: ObjectType, props: dict[str, str], query: str) -> bool:
    """Free text over the type's default searchable properties (substring, case-insensitive; phones by digits)."""
    needle = query.casefold().strip()
    digits = phone_key(query)
    for name in otype.query_properties:
        value = props.get(name)
        if not value:
            continue
        if needle in value.casefold() or (name in _PHONES and digits and digits in phone_key(value)):
            return True
    return False


def _sort(matches: list[tuple[Record, dict[str, str]]], sorts: Any, definitions: dict[str, Any]) -> list:
    """Only the first sort applies. Records without the value come last either way."""
    by_id = sorted(matches, key=lambda m: int(m[0].id))
    if not sorts:
        return by_id
    if not isinstance(sorts, list):
        raise err.invalid_input("Cannot deserialize `sorts`: expected an array")
    first = sorts[0]
    if isinstance(first, str):
        name, descending = first.lstrip("-"), first.startswith("-")
    elif isinstance(first, dict) and first.get("propertyName"):
        name, descending = first["propertyName"], str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise err.missing_fields(["propertyName"])
    kind = _kind(name, definitions.get(name))
    keyed = [(m, _key(kind, m[1][name]) if m[1].get(name) else None) for m in by_id]
    present = [(m, k) for m, k in keyed if k is not None]
    missing = [m for m, k in keyed if k is None]
    present.sort(key=lambda pair: (pair[1], int(pair[0][0].id)), reverse=descending)  # ties: by id, same way
    return [m for m, _ in present] + missing
