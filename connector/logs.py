"""Log set-up: plain or JSON lines, with the event id and stage as fields, never personal data.

Callers pass context through `extra=` (event_id, code, status …); nothing in the connector logs a
phone number, a name or transcript text, and `mask_phone` exists for the rare place that must
refer to a number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from connector.config import LoggingSettings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0/C1 controls and the Unicode line separators: what can end or forge a log line, or hide in one."""


def escape_control(text: str) -> str:
    """`a\nb` → `a\\nb`: a payload value (an id with a newline, a NUL) stays on its own line, visibly."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


MAX_FIELD_CHARS = 256
"""A field's value longer than this (an id or reason a sender made 5,000 characters long) is cut in the log line."""


def bounded(value: object) -> object:
    """A string field cut at MAX_FIELD_CHARS, saying how much was left out; other values unchanged."""
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return f"{value[:MAX_FIELD_CHARS]}...(+{len(value) - MAX_FIELD_CHARS} chars)"
    return value


def mask_phone(e164: str | None) -> str:
    """`+12025550143` → `+1******0143`: enough to tell numbers apart in support, not to call them.

    Whatever the input (a raw number that did not parse, `+1...`, `12345`), at most its last four characters
    and, for an E.164 number of eight digits or more, its `+` and first digit show; the rest is masked, never
    repeated or dropped (`12345` read `122345` before)."""
    if not e164:
        return "-"
    text = escape_control(e164)
    shown_tail = min(4, max(len(text) - 4, 0))  # a short value shows less than half of itself
    head = text[:2] if text.startswith("+") and len(text) >= 9 else ""
    masked = len(text) - len(head) - shown_tail
    return head + "*" * masked + (text[-shown_tail:] if shown_tail else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            {k: bounded(v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """Human-readable line with the `extra=` fields appended as key=value.

    The message and every field are escaped (control characters as `\\n`, `\\x00`): values come from
    webhook payloads, and a newline in an id must not start a forged log line. Only a traceback,
    which we write ourselves, keeps its line breaks.
    """

    def format(self, record: logging.LogRecord) -> str:
        # A copy, so other handlers see the record unchanged. What makeLogRecord(record.__dict__)
        # does, without running LogRecord.__init__ (clock, thread and process look-ups) only for
        # __dict__.update to overwrite all it set: this runs once per webhook.
        escaped = logging.LogRecord.__new__(logging.LogRecord)
        escaped.__dict__.update(record.__dict__)
        escaped.msg, escaped.args = escape_control(record.getMessage()), None
        line = super().format(escaped)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        return line + "".join(f" {k}={escape_control(str(bounded(v)))}" for k, v in fields.items())


def setup_logging(settings: LoggingSettings) -> None:
    """Route the `connector` loggers to stderr in the configured format (idempotent)."""
    logger = logging.getLogger("connector")
    logger.setLevel(settings.level)
    for handler in list(logger.handlers):
        if getattr(handler, "_connector", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._connector = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if settings.json_lines else PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.propagate = False
