"""Salesforce record ids: 15-char case-sensitive keys, 18-char case-safe ids with the checksum suffix.

An id is a 3-char key prefix (the object type: Contact 003, Lead 00Q, Task 00T, Account 001, User 005), then
12 base-62 chars; the REST API always returns the 18-char form, whose last 3 chars encode which of the first
15 are upper case, 5 chars per suffix char (the documented 15→18 algorithm, e.g. CASESAFEID() in formulas).
Clients may send either form, so the store keys records by the 15-char prefix.
"""

from __future__ import annotations

import re
import string
import threading

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_ID_SHAPE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def checksum_suffix(id15: str) -> str:
    """The 3 characters that make a 15-char id case-safe."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def key15(value: object) -> str | None:
    """The 15-char key of a well-formed id (15 chars, or 18 with a matching suffix), else None."""
    if not isinstance(value, str) or not _ID_SHAPE.match(value):
        return None
    if len(value) == 18 and value[15:].upper() != checksum_suffix(value[:15]):
        return None
    return value[:15]


def to18(value: str) -> str:
    """The 18-char form of a well-formed id (raises ValueError otherwise)."""
    key = key15(value)
    if key is None:
        raise ValueError(f"not a Salesforce id: {value!r}")
    return key + checksum_suffix(key)


def find_ids(text: str) -> list[str]:
    """Well-formed ids mentioned in a URL or message (used to name the record in injected lock errors)."""
    return [token for token in re.findall(r"[a-zA-Z0-9]{15,18}", text) if len(token) in (15, 18) and key15(token)]


class IdGenerator:
    """Mints unique 18-char ids: prefix + a fixed pod part + a base-62 counter, deterministic per emulator."""

    def __init__(self, pod: str = "8d", start: int = 8_842_417_260_544) -> None:
        self._pod = pod
        self._counter = start
        self._lock = threading.Lock()

    def next(self, prefix: str) -> str:
        """A fresh 18-char id for an object with this 3-char key prefix."""
        with self._lock:
            self._counter += 1
            number = self._counter
        digits = ""
        while number:
            number, remainder = divmod(number, 62)
            digits = _BASE62[remainder] + digits
        id15 = prefix + self._pod + "0" + digits.rjust(9, "0")
        return id15 + checksum_suffix(id15)
