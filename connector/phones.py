"""One phone matcher for every sink: is a phone string a human typed into a CRM the call's E.164 number?

Why one module: the Salesforce and HubSpot sinks each had their own comparison, and they disagreed on numbers
``phonenumbers`` cannot place in a region (``+1 555-01xx`` fictional numbers, new area codes): a Contact typed
``(555) 010-2035`` was not recognised on Salesforce, so a duplicate Lead got that number's do-not-call.

How a stored string is read: in the region of the call's number, and when ``phonenumbers`` cannot place the number
in a region, in the main region of its country code (``region_code_for_country_code``: ``US`` for +1). Several
readings are tried, because people type the same number as ``(202) 555-0143``, ``+1 202 555 0143``,
``001 202 555 0143`` (an ``00`` international prefix, which the US region's own ``011`` does not cover),
``12025550143`` (country code without ``+``), ``202.555.0143 ext. 7`` (extensions never count). Two strings are the
same number when a reading gives exactly the call's country code and national number — never a suffix match, so a
different number that merely ends in the same digits never matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

_DIGITS = re.compile(r"\D")
_EXTENSION = re.compile(r"(?i)\s*(?:;\s*ext=|ext\.?|extension|x|#)\s*\d{1,7}\s*$")
MIN_DIGITS = 3
"""Shorter digit strings are not phone numbers worth searching for."""


def digits(text: str) -> str:
    return _DIGITS.sub("", text)


@lru_cache(maxsize=4096)
def parse_e164(e164: str) -> PhoneNumber | None:
    """The call's number, or None when it is not a number at all."""
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException:
        return None


def home_region(number: PhoneNumber) -> str | None:
    """The region a national-format string of this number is read in: its own, else its country code's main one."""
    region = phonenumbers.region_code_for_number(number)
    if region and region != phonenumbers.UNKNOWN_REGION:
        return region
    main = phonenumbers.region_code_for_country_code(number.country_code)
    return None if main == phonenumbers.UNKNOWN_REGION else main


def _key(number: PhoneNumber) -> tuple[int, str]:
    """Country code and national significant number (leading zeros included, extension ignored)."""
    return number.country_code, phonenumbers.national_significant_number(number)


def _readings(stored: str, region: str | None) -> list[PhoneNumber]:
    """Every plausible reading of a stored string (see the module docstring)."""
    text = stored.strip()
    core = _EXTENSION.sub("", text)
    raw = digits(core)
    readings: list[PhoneNumber] = []
    try:
        readings.append(phonenumbers.parse(text, region))
    except NumberParseException:
        pass
    if text.startswith("+") or (readings and phonenumbers.is_valid_number(readings[0])):
        return readings  # a valid reading in the call's region is what the human meant
    # Not a number of that region: perhaps an international number without its "+" ("0044…", "44…").
    for candidate in (["+" + raw[2:]] if raw.startswith("00") else []) + (["+" + raw] if len(raw) >= 8 else []):
        try:
            readings.append(phonenumbers.parse(candidate, None))
        except NumberParseException:
            continue
    return readings


def same_number(stored: Any, e164: str) -> bool:
    """Whether a stored phone string, however formatted, is the number ``e164``."""
    if not isinstance(stored, str) or len(digits(stored)) < MIN_DIGITS:
        return False
    wanted = parse_e164(e164)
    if wanted is None:
        return bool(digits(e164)) and digits(stored) == digits(e164)
    key = _key(wanted)
    return any(_key(reading) == key for reading in _readings(stored, home_region(wanted)))


def national_digits(e164: str) -> str:
    """The national significant number (area code + number, no country code, no trunk prefix): what HubSpot's
    searchable phone properties hold."""
    wanted = parse_e164(e164)
    if wanted is None:
        raw = digits(e164)
        return raw[1:] if len(raw) == 11 and raw.startswith("1") else raw
    return phonenumbers.national_significant_number(wanted)


def number_forms(e164: str) -> list[str]:
    """Digit strings one number is typed as: international without ``+``, national with its trunk prefix
    (``020 7946 0018``), and the national significant number (``20 7946 0018``)."""
    wanted = parse_e164(e164)
    forms = [digits(e164)]
    if wanted is not None:
        region = home_region(wanted)
        national = phonenumbers.format_number(wanted, PhoneNumberFormat.NATIONAL)
        if region is not None and not phonenumbers.is_valid_number(wanted):
            # No region of its own: format as its country's main region would (the trunk prefix, if any).
            prefix = phonenumbers.ndd_prefix_for_region(region, True) or ""
            national = prefix + phonenumbers.national_significant_number(wanted)
        forms += [digits(national), phonenumbers.national_significant_number(wanted)]
    return list(dict.fromkeys(f for f in forms if len(f) >= MIN_DIGITS))


def numbers_held(values: Mapping[str, Any], fields: Sequence[str], by_national: Mapping[str, list[str]]) -> set[str]:
    """Which wanted E.164 numbers a record's phone fields really hold (a batched search answers for many numbers):
    a cheap pre-selection by trailing digits (``by_national``: national digits → E.164s), then ``same_number``
    decides — never a suffix match on its own."""
    hits: set[str] = set()
    for name in fields:
        value = values.get(name)
        if not isinstance(value, str):
            continue
        raw = digits(value)
        for cut in range(len(raw)):
            for e164 in by_national.get(raw[cut:], ()):
                if same_number(value, e164):
                    hits.add(e164)
    return hits


def one_per_number(
    indexes: Sequence[int], key_of: Callable[[int], tuple[str, str]]
) -> tuple[dict[tuple[str, str], int], dict[int, list[int]]]:
    """Group items by (object, number): the first of each group leads (it is created), the others follow it (they
    share its record), so two events of one new number never create two records."""
    leaders: dict[tuple[str, str], int] = {}
    followers: dict[int, list[int]] = {}
    for index in indexes:
        key = key_of(index)
        if key in leaders:
            followers[leaders[key]].append(index)
        else:
            leaders[key] = index
            followers[index] = []
    return leaders, followers
