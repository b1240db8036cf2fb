"""The shared phone matcher (connector.phones): the same number in any typed format matches, a different number never.

Property tests over generated numbers: fictional NANP +1 555-01xx numbers (which phonenumbers cannot place in a
region — the issue's duplicate-Lead case), valid example numbers of several countries, and every common way people
type them (national with parentheses, dots, dashes, spaces; +CC; 00CC; with extensions).
"""

from __future__ import annotations

import re

import phonenumbers
from hypothesis import assume, given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from connector.phones import national_digits, number_forms, same_number

REGIONS = ["US", "CA", "GB", "DE", "FR", "IT", "ES", "NL", "AU", "BR", "IN", "JP", "MX", "CH", "SE"]


@st.composite
def fictional_nanp(draw: st.DrawFn) -> str:
    """+1 555-01xx: reserved for fiction, unassignable to a region."""
    area = draw(st.sampled_from(["555", "212", "202", "415"]))
    return (
        f"+1{area}01{draw(st.integers(0, 99)):02d}" if area == "555" else f"+1{area}55501{draw(st.integers(0, 99)):02d}"
    )


@st.composite
def valid_number(draw: st.DrawFn) -> str:
    """A valid number of some region: the region's example number with its last digits varied."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number(region)
    assert example is not None
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    varied = e164[:-2] + f"{draw(st.integers(0, 99)):02d}"
    assume(phonenumbers.is_valid_number(phonenumbers.parse(varied)))
    return varied


numbers = st.one_of(fictional_nanp(), valid_number())


@st.composite
def typed(draw: st.DrawFn, e164: str) -> str:
    """``e164`` as a human might have typed it into a CRM."""
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    digits = re.sub(r"\D", "", national)
    style = draw(st.sampled_from(["national", "dots", "dashes", "spaces", "plain", "intl", "e164", "00", "parens"]))
    if number.country_code == 1 and len(digits) == 10:
        parts = (digits[:3], digits[3:6], digits[6:])
        text = {
            "national": national,
            "dots": ".".join(parts),
            "dashes": "-".join(parts),
            "spaces": " ".join(parts),
            "plain": digits,
            "parens": f"({parts[0]}) {parts[1]}-{parts[2]}",
        }.get(style)
    else:
        text = {
            "national": national,
            "plain": digits,
            "spaces": national.replace("-", " "),
            "dashes": national.replace(" ", "-"),
            "dots": national.replace(" ", "."),
        }.get(style)
    if text is None:
        text = {"intl": international, "e164": e164, "00": "00" + international.lstrip("+")}.get(
            style, international.replace(" ", "-")
        )
    extension = draw(st.sampled_from(["", " ext. 12", " x7", " ext 305", ";ext=9"]))
    return text + extension


@given(st.data())
def test_the_same_number_in_any_format_matches(data: st.DataObject) -> None:
    e164 = data.draw(numbers)
    assert same_number(data.draw(typed(e164)), e164)


@given(numbers, numbers, st.data())
def test_different_numbers_typed_internationally_never_match(a: str, b: str, data: st.DataObject) -> None:
    assume(a != b)
    stored = data.draw(typed(b)).replace("(", "").replace(")", "")
    number = phonenumbers.parse(b)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    assert not same_number(international, a)
    assert not same_number("00" + international.lstrip("+"), a)
    assert not same_number(b, a)
    if phonenumbers.parse(a).country_code == number.country_code:  # national formats: same country only
        assert not same_number(stored, a)


@given(fictional_nanp(), st.integers(2, 9))
def test_a_number_that_ends_in_the_same_digits_is_not_the_number(e164: str, prefix: int) -> None:
    national = e164[2:]
    assert not same_number(f"+{prefix}{prefix} {national}", e164)  # another country code, same digits after
    assert not same_number(national[1:], e164)  # one digit short


def test_the_issue_case_and_search_forms() -> None:
    assert same_number("(555) 010-2035", "+15550102035")
    assert not same_number("(555) 010-2036", "+15550102035")
    assert not same_number("", "+15550102035") and not same_number(None, "+15550102035")
    assert number_forms("+15550102035") == ["15550102035", "5550102035"]
    assert number_forms("+442079460018") == ["442079460018", "02079460018", "2079460018"]
    assert national_digits("+15550102035") == "5550102035" and national_digits("+442079460018") == "2079460018"
