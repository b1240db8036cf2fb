"""Private field coercers for :mod:`connector.payload`.

Each helper takes one raw JSON value plus its dotted path, returns the normalized value, and
records problems in a shared :class:`Problems` list instead of raising, so that one 422 answer can
name every bad field at once. Messages name the expected shape, never the value sent: values may
be phone numbers, names or transcript text (see :mod:`connector.errors`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cache
from itertools import accumulate
from typing import Any
from zoneinfo import available_timezones

import phonenumbers
from phonenumbers import PhoneNumber

MAX_DEPTH = 64
"""Deepest container nesting accepted anywhere in a document (root object = 1).

The normalized event must survive ``model_dump_json``/``model_validate_json``, whose JSON parser
stops at about 200 levels; real call records are a handful of levels deep. The one limit for both
the receiver's check of a body's text (``nested_too_deep``) and the check of a parsed value (``check_json``).
"""

MAX_LISTED_PROBLEMS = 100
"""More problems than this are summarised in one extra entry, to keep the 422 body bounded."""

_BOOL_WORDS = {"true": True, "false": False, "y": True, "n": False, "yes": True, "no": False, "1": True, "0": False}
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEPARATORS = re.compile(r"[\s\-_]+")
_UTC_ONLY = re.compile(r"(?:UTC|GMT|Z)", re.IGNORECASE)
_OFFSET = re.compile(
    r"(?:(?:UTC|GMT)\s*)?(?P<sign>[+\-\u2212])\s*"
    r"(?:(?P<h>[0-9]{1,2})(?::(?P<m>[0-9]{2}))?|(?P<hh>[0-9]{2})(?P<mm>[0-9]{2}))",
    re.IGNORECASE,
)
_MAX_NUMBER_TEXT = 40
"""Longer numeric strings are refused: ``int()`` rejects more than 4300 digits with ValueError."""
_MAX_OFFSET_MINUTES = 14 * 60
_UNUSABLE_ZONES = frozenset({"localtime", "Factory", "posixrules"})
"""Zone files that exist on disk but do not name a place: host-dependent or deliberately unknown."""

MISSING = object()
"""Marks a key that is not in the document, as opposed to one sent as ``null``."""


class Problems:
    """Collects ``{"path", "message"}`` entries in the order found."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"path": path, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)

    def listed(self) -> list[dict[str, str]]:
        """Every problem, or the first ``MAX_LISTED_PROBLEMS`` plus one entry counting the rest."""
        if len(self.items) <= MAX_LISTED_PROBLEMS:
            return list(self.items)
        rest = len(self.items) - MAX_LISTED_PROBLEMS
        return self.items[:MAX_LISTED_PROBLEMS] + [{"path": "<root>", "message": f"{rest} more problem(s) not listed"}]


def child(path: str, key: str | int) -> str:
    """Dotted path of ``key`` under ``path``: ``call.duration``, ``transcript[2]``, ``meta["a b"]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _has_surrogate(text: str) -> bool:
    """Lone surrogates come through ``json.loads`` but cannot be encoded as UTF-8 on the way out.

    ASCII text (most values) is answered without encoding a copy: CPython keeps whether a string is ASCII,
    so `isascii` costs nothing, where the encode costs about 0.15 µs per value, 22 values per sample webhook
    and two per transcript turn."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1


def nested_too_deep(text: str) -> bool:
    """Whether a JSON text nests containers deeper than MAX_DEPTH, read without parsing it.

    The receiver asks before ``json.loads`` so a hostile body is refused cheaply. Few brackets in all: no need
    to look further. Otherwise the strings are cut out and the brackets left are counted, each step done by
    str and bytes methods rather than a Python loop over the text: a transcript of 100 turns has about 105
    brackets among 13,000 characters, and walking every character cost more than the rest of the webhook
    (0.9 ms against 0.5; now 0.1 ms, about what ``json.loads`` of it takes).

    How the strings are found: with the escaped backslashes and then the escaped quotes removed, every quote
    left opens or closes a string, so the text between quotes alternates outside, inside, outside. That holds
    for any valid JSON; for invalid JSON the answer may differ from a parser's, which refuses it anyway.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(unescaped.split('"')[0::2])
    brackets = outside.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def check_json(value: Any, path: str, depth: int, problems: Problems) -> None:
    """Reject what cannot be stored and re-read as JSON: NaN/Infinity, lone surrogates, deep nesting.

    Iterative on purpose: ``json.loads`` accepts ~1000 levels, more than Python's call stack.
    ``depth`` is the nesting level of ``value`` itself when it is a container.
    """
    if isinstance(value, dict) and depth <= MAX_DEPTH and _flat_and_plain(value):
        return  # the usual question_fields or meta: nothing to find, so no path of each value to build
    stack: list[tuple[Any, str, int]] = [(value, path, depth)]
    while stack:
        item, where, level = stack.pop()
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                problems.add(where, "NaN and Infinity are not valid JSON numbers")
        elif isinstance(item, str):
            if _has_surrogate(item):
                problems.add(where, "string contains an unpaired surrogate")
        elif isinstance(item, (dict, list)):
            if level > MAX_DEPTH:
                problems.add(where or "<root>", f"nested deeper than {MAX_DEPTH} levels")
                continue
            if isinstance(item, list):
                entries = [(child(where, i), v) for i, v in enumerate(item)]
            else:
                entries = []
                for key, v in item.items():
                    if not isinstance(key, str) or _has_surrogate(key):
                        problems.add(where or "<root>", "object key is not a valid JSON string")
                        continue
                    entries.append((child(where, key), v))
            stack.extend((v, p, level + 1) for p, v in reversed(entries))
        else:
            problems.add(where, "not a JSON value")


def _flat_and_plain(mapping: dict[Any, Any]) -> bool:
    """Whether an object holds only ASCII keys and ASCII strings, integers, booleans or nulls: values that
    cannot fail `check_json` (floats, other text and containers take the full walk)."""
    for key, item in mapping.items():
        if not (type(key) is str and key.isascii()):
            return False
        if item is None or type(item) is int or type(item) is bool:
            continue
        if not (type(item) is str and item.isascii()):
            return False
    return True


def kept_object(value: Any, path: str, problems: Problems) -> dict[str, Any]:
    """An object kept as sent (``question_fields``, ``meta``); ``null``/absent become ``{}``."""
    if value is None or value is MISSING:
        return {}
    if not isinstance(value, dict):
        problems.add(path, "expected an object or null")
        return {}
    check_json(value, path, 2, problems)
    return dict(value)


def text(value: Any, path: str, problems: Problems) -> str | None:
    """A short identifier-like string (zip, names, keys): stripped; numbers accepted; empty -> None."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        problems.add(path, "expected a string")
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.add(path, "expected a string, got a non-finite number")
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        if _has_surrogate(value):
            problems.add(path, "string contains an unpaired surrogate")
            return None
        return value.strip() or None
    problems.add(path, "expected a string")
    return None


def raw_string(value: Any, path: str, problems: Problems) -> str | None:
    """A string field kept verbatim (enumerations, roles); ``null``/absent -> None."""
    if value is None or value is MISSING:
        return None
    if not isinstance(value, str):
        problems.add(path, "expected a string or null")
        return None
    if _has_surrogate(value):
        problems.add(path, "string contains an unpaired surrogate")
        return None
    return value


def bool_like(value: Any, path: str, problems: Problems) -> bool | None:
    """true/false, "Y"/"N", "yes"/"no", "1"/"0", 1/0; empty string and null mean absent."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _BOOL_WORDS:
            return _BOOL_WORDS[word]
    problems.add(path, "expected a boolean (true/false, Y/N, yes/no, 1/0)")
    return None


def count(value: Any, path: str, problems: Problems) -> int | None:
    """A non-negative integer or integer-like string (workflow day/call); empty -> None."""
    if value is None or value is MISSING:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        if len(stripped) <= _MAX_NUMBER_TEXT and _INTEGER.fullmatch(stripped):
            number = int(stripped)
    if number is None:
        problems.add(path, "expected an integer")
        return None
    if number < 0:
        problems.add(path, "must not be negative")
        return None
    return number


def duration(value: Any, path: str, problems: Problems) -> tuple[int | float | None, int | None]:
    """Seconds as sent (int when integral) and milliseconds; rejects negative, NaN, inf, bools."""
    if value is None or value is MISSING:
        return None, None
    seconds: int | float | None = None
    if isinstance(value, bool):
        problems.add(path, "expected a number of seconds, got a boolean")
        return None, None
    if isinstance(value, (int, float)):
        seconds = value
    elif isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None, None
        if len(stripped) <= _MAX_NUMBER_TEXT and _DECIMAL.fullmatch(stripped):
            seconds = float(stripped) if any(c in stripped for c in ".eE") else int(stripped)
    if seconds is None:
        problems.add(path, "expected a number of seconds")
        return None, None
    if isinstance(seconds, float):
        if not math.isfinite(seconds):
            problems.add(path, "must be a finite number")
            return None, None
        if seconds.is_integer():
            seconds = int(seconds)
    if seconds < 0:
        problems.add(path, "must not be negative")
        return None, None
    millis = seconds * 1000 if isinstance(seconds, int) else round(seconds * 1000)
    return seconds, millis


def enum_key(raw: str) -> str:
    """Lookup key for an enumeration value: stripped, lowercased, spaces/hyphens -> ``_``."""
    return _SEPARATORS.sub("_", raw.strip().lower()).strip("_")


def phone(raw: str | None, default_region: str) -> dict[str, Any]:
    """Fields of :class:`connector.payload.Phone`; possible (not necessarily valid) numbers get E.164."""
    empty: dict[str, Any] = {"raw": raw, "e164": None, "valid": False, "region": None}
    if raw is None or not raw.strip():
        return {**empty, "problem": "missing"}
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return {**empty, "problem": "unparseable"}
    if not phonenumbers.is_possible_number(number):
        return {**empty, "problem": "not a possible number"}
    # is_valid_number(n) is is_valid_number_for_region(n, region_code_for_number(n)): finding the
    # region once instead of twice saves a third of the metadata matching, once per webhook.
    region = phonenumbers.region_code_for_number(number)
    valid = region is not None and (
        _region_found_by_validity(number, region) or phonenumbers.is_valid_number_for_region(number, region)
    )
    return {
        "raw": raw,
        "e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "valid": valid,
        "region": region,
        "problem": None,
    }


def _region_found_by_validity(number: PhoneNumber, region: str) -> bool:
    """Whether `region_code_for_number` already validated the number for `region`, so asking again is redundant.

    A country code shared by several regions (+1: US, CA and 23 more; +7, +44 …) is resolved by trying each
    region in turn: one told apart by leading digits (+1 268: AG) is chosen on those digits alone, any other
    only when the number matches one of its number types, which is exactly `is_valid_number_for_region`'s
    test (phonenumbers' `_region_code_for_number_from_list`). A US number is one such: the second match
    was a fifth of a webhook's phone parsing. `tests/test_payload.py` checks the shortcut against
    `is_valid_number` for every region's example numbers and their neighbours."""
    if len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code, ())) < 2:
        return False  # a country code's only region is returned without any check
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    return metadata is not None and metadata.leading_digits is None


@cache
def _zone_names() -> dict[str, str]:
    """Lowercased IANA name -> canonical spelling, read once (the scan walks the tz database)."""
    names = available_timezones() - _UNUSABLE_ZONES
    return {name.lower(): name for name in sorted(names)}


def timezone(raw: str | None) -> dict[str, Any]:
    """Fields of :class:`connector.payload.LeadTimezone`: fixed offsets first, then IANA names."""
    empty: dict[str, Any] = {"raw": raw, "kind": None, "name": None, "offset_minutes": None}
    stripped = raw.strip() if raw is not None else ""
    if not stripped:
        return {**empty, "problem": "missing"}
    if _UTC_ONLY.fullmatch(stripped):
        return {**empty, "kind": "fixed_offset", "name": "UTC+00:00", "offset_minutes": 0, "problem": None}
    match = _OFFSET.fullmatch(stripped)
    if match:
        hours = int(match["h"] or match["hh"])
        minutes = int(match["m"] or match["mm"] or 0)
        total = hours * 60 + minutes
        if minutes > 59 or total > _MAX_OFFSET_MINUTES:
            return {**empty, "problem": "offset out of range"}
        sign = -1 if match["sign"] in "-\u2212" and total else 1
        name = f"UTC{'-' if sign < 0 else '+'}{hours:02d}:{minutes:02d}"
        return {**empty, "kind": "fixed_offset", "name": name, "offset_minutes": sign * total, "problem": None}
    canonical = _zone_names().get(stripped.lower())
    if canonical is not None:
        return {**empty, "kind": "iana", "name": canonical, "problem": None}
    return {**empty, "problem": "not a UTC offset or IANA time zone name"}


def lookup(raw: str | None, table: Mapping[str, Any]) -> tuple[str | None, bool]:
    """Canonical value for ``raw`` via ``table``, else the stripped raw value; and whether known."""
    if raw is None or not raw.strip():
        return None, False
    canonical = table.get(enum_key(raw))
    if canonical is None:
        return raw.strip(), False
    return str(canonical), True
