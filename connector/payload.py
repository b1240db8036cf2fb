"""The 2X post-call webhook body and its normalization into a :class:`CallEvent`.

Policy: normalize leniently, reject only what is not a call record. Spelling variants of known
values are mapped to their canonical form; values we do not recognise are kept verbatim and
*flagged* rather than rejected, because the vendor's own sample disagrees with its documentation
(``"transferred"`` vs ``call_transferred``). Only values of the wrong shape are rejected (422), all
at once with dotted paths, and nothing the vendor sent is dropped: unknown keys go to ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from datetime import timezone as _fixed_timezone
from datetime import tzinfo as _tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector import _normalize as _n
from connector.defaults import MAX_EVENT_ID_CHARS
from connector.errors import PayloadError


class EndReason(StrEnum):
    """Why the call ended, as documented by 2X."""

    CALL_TRANSFERRED = "call_transferred"
    SCHEDULE_CALL_BACK = "schedule_call_back"
    NOT_INTERESTED = "not_interested"
    DO_NOT_CALL = "do_not_call"
    WRONG_NUMBER = "wrong_number"
    END_CALL = "end_call"
    HUNG_UP = "hung_up"
    VOICEMAIL_DETECTED = "voicemail_detected"
    NO_ANSWER = "no_answer"


class FailureReason(StrEnum):
    """Why the call could not be placed, as documented by 2X."""

    INVALID_NUMBER = "invalid_number"
    NUMBER_NO_SERVICE = "number_no_service"
    UNREACHABLE = "unreachable"


_E = TypeVar("_E", bound=StrEnum)


def _aliases(enum: type[_E], extra: dict[str, _E]) -> Mapping[str, _E]:
    """Read-only lookup table: every canonical value maps to itself, plus the unambiguous variants."""
    return MappingProxyType({**{member.value: member for member in enum}, **extra})


_R = EndReason
END_REASON_ALIASES: Mapping[str, EndReason] = _aliases(
    EndReason,
    {
        "transferred": _R.CALL_TRANSFERRED,
        "transfer": _R.CALL_TRANSFERRED,
        "call_transfer": _R.CALL_TRANSFERRED,
        "transferred_call": _R.CALL_TRANSFERRED,
        "callback": _R.SCHEDULE_CALL_BACK,
        "call_back": _R.SCHEDULE_CALL_BACK,
        "scheduled_call_back": _R.SCHEDULE_CALL_BACK,
        "schedule_callback": _R.SCHEDULE_CALL_BACK,
        "scheduled_callback": _R.SCHEDULE_CALL_BACK,
        "callback_requested": _R.SCHEDULE_CALL_BACK,
        "call_back_requested": _R.SCHEDULE_CALL_BACK,
        "callback_scheduled": _R.SCHEDULE_CALL_BACK,
        "notinterested": _R.NOT_INTERESTED,
        "dnc": _R.DO_NOT_CALL,
        "do_not_contact": _R.DO_NOT_CALL,
        "donotcall": _R.DO_NOT_CALL,
        "wrongnumber": _R.WRONG_NUMBER,
        "call_ended": _R.END_CALL,
        "ended_call": _R.END_CALL,
        "endcall": _R.END_CALL,
        "hangup": _R.HUNG_UP,
        "hang_up": _R.HUNG_UP,
        "hungup": _R.HUNG_UP,
        "voicemail": _R.VOICEMAIL_DETECTED,
        "voice_mail": _R.VOICEMAIL_DETECTED,
        "voicemail_detect": _R.VOICEMAIL_DETECTED,
        "answering_machine": _R.VOICEMAIL_DETECTED,
        "noanswer": _R.NO_ANSWER,
        "not_answered": _R.NO_ANSWER,
        "unanswered": _R.NO_ANSWER,
    },
)
"""Normalized spelling (see :func:`parse_webhook`) -> canonical end reason, canonical values included."""

_F = FailureReason
FAILURE_REASON_ALIASES: Mapping[str, FailureReason] = _aliases(
    FailureReason,
    {
        "invalid": _F.INVALID_NUMBER,
        "invalid_phone_number": _F.INVALID_NUMBER,
        "not_in_service": _F.NUMBER_NO_SERVICE,
        "number_not_in_service": _F.NUMBER_NO_SERVICE,
        "no_service": _F.NUMBER_NO_SERVICE,
        "out_of_service": _F.NUMBER_NO_SERVICE,
        "not_reachable": _F.UNREACHABLE,
        "number_unreachable": _F.UNREACHABLE,
    },
)
"""Normalized spelling -> canonical failure reason, canonical values included."""

_ROLES = {
    **dict.fromkeys(("user", "human", "customer", "lead", "caller", "callee", "contact", "record"), "user"),
    **dict.fromkeys(("assistant", "ai", "agent", "bot", "2x"), "assistant"),
    "system": "system",
    "tool": "tool",
}
_ROLE_NAMES = frozenset(_ROLES.values())
_TURN_KEYS = frozenset({"role", "content"})
_DIRECTIONS = frozenset({"outbound", "inbound"})
_CALL_KEYS = frozenset(
    {"end_reason", "failure_reason", "telnyx_call_control_id", "answered", "duration", "call_direction"}
)
_TOP_KEYS = frozenset(
    {
        "id",
        "call",
        "question_fields",
        "message_left",
        "record_phone_number",
        "record_zip_code",
        "record_first_name",
        "record_last_name",
        "record_timezone",
        "workflow_key",
        "workflow_day",
        "workflow_call",
        "workflow_end",
        "meta",
        "transcript",
    }
)


class _Model(BaseModel):
    """Immutable, closed models: a typo in a field name must fail, not add an attribute."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Outcome(_Model):
    """An enumerated value that may be unknown to us; kept verbatim so nothing is lost."""

    value: str | None
    raw: str | None
    known: bool


class Phone(_Model):
    """The lead's number; ``e164`` is the contact key, so possible-but-invalid numbers still get one."""

    raw: str | None
    e164: str | None
    valid: bool
    region: str | None
    problem: str | None


class LeadTimezone(_Model):
    """The lead's zone as sent and as something datetime can use."""

    raw: str | None
    kind: Literal["iana", "fixed_offset"] | None
    name: str | None
    offset_minutes: int | None
    problem: str | None

    def tzinfo(self) -> _tzinfo | None:
        """A tzinfo for local-time arithmetic, or None when the zone is absent or unusable here."""
        try:
            if self.kind == "fixed_offset" and self.offset_minutes is not None:
                name = self.name or "UTC"
                return _fixed_timezone(timedelta(minutes=self.offset_minutes), name)
            if self.kind == "iana" and self.name:
                return ZoneInfo(self.name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # tzdata missing, offset >= 24h
            return None
        return None


class LeadRecord(_Model):
    """The ``record_*`` fields: who was called."""

    phone: Phone
    zip_code: str | None
    first_name: str | None
    last_name: str | None
    timezone: LeadTimezone


class CallDetails(_Model):
    """The ``call`` object, with duration also in milliseconds for CRMs that want integers."""

    end_reason: Outcome
    failure_reason: Outcome
    telnyx_call_control_id: str | None
    answered: bool | None
    duration_seconds: int | float | None
    duration_ms: int | None
    direction: str | None
    extra: dict[str, Any]


class TranscriptTurn(_Model):
    """One utterance; ``role`` is normalized so mappings need not know every vendor spelling."""

    role: str
    role_raw: str | None
    content: str
    extra: dict[str, Any] = Field(default_factory=dict)
    """Unknown keys of the turn, kept as sent (never drop data)."""


class Workflow(_Model):
    """Where the call sits in the vendor's cadence; ``end`` means no further steps."""

    key: str | None
    day: int | None
    call: int | None
    end: bool


class CallEvent(_Model):
    """One normalized post-call webhook: the unit the ledger stores and the mappings read."""

    id: str
    id_raw: int | str
    call: CallDetails
    question_fields: dict[str, Any]
    message_left: bool | None
    record: LeadRecord
    workflow: Workflow
    meta: dict[str, Any]
    transcript: list[TranscriptTurn]
    extra: dict[str, Any]
    flags: list[str]

    @property
    def contact_key(self) -> str | None:
        """The E.164 phone number used to find the CRM contact, when there is one."""
        return self.record.phone.e164


def parse_webhook(document: object, *, default_region: str = "US") -> CallEvent:
    """Normalize a decoded webhook body; raise PayloadError (400/422) for anything else.

    ``default_region`` is used for phone numbers sent without a country code. Every field problem
    is collected before raising so the vendor (and the quarantine) sees all of them at once.
    """
    if default_region != "ZZ" and default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default_region {default_region!r}")
    if not isinstance(document, dict):
        raise PayloadError(400, "not_an_object", "the webhook body must be a JSON object")
    if "id" not in document and "call" not in document:
        raise PayloadError(
            400, "not_a_call_record", "the JSON object has neither 'id' nor 'call'; not a 2X call record"
        )
    problems = _n.Problems()
    flags: set[str] = set()
    used_top: set[str] = set()
    event_id, id_raw = _event_id(document.get("id", _n.MISSING), problems)
    call = _call(document, problems, flags, used_top)
    record = _record(document, default_region, problems, flags)
    transcript = _transcript(document.get("transcript"), problems, flags)
    workflow = Workflow(
        key=_n.text(document.get("workflow_key"), "workflow_key", problems),
        day=_n.count(document.get("workflow_day"), "workflow_day", problems),
        call=_n.count(document.get("workflow_call"), "workflow_call", problems),
        end=bool(_n.bool_like(document.get("workflow_end"), "workflow_end", problems)),
    )
    fields: dict[str, Any] = {
        "id": event_id,
        "id_raw": id_raw,
        "call": call,
        "record": record,
        "workflow": workflow,
        "transcript": transcript,
        "question_fields": _n.kept_object(document.get("question_fields"), "question_fields", problems),
        "message_left": _n.bool_like(document.get("message_left"), "message_left", problems),
        "meta": _n.kept_object(document.get("meta"), "meta", problems),
    }
    extra = {k: v for k, v in document.items() if k not in _TOP_KEYS and k not in used_top}
    if extra:  # usually empty: no walk to set up
        _n.check_json(extra, "", 1, problems)
    if problems:
        raise _invalid(problems.listed())
    try:
        return CallEvent(**fields, extra=extra, flags=sorted(flags))
    except ValidationError as exc:  # safety net: the checks above should make this unreachable
        raise _invalid(
            [
                {"path": ".".join(map(str, e["loc"])) or "<root>", "message": e["msg"]}
                for e in exc.errors(include_input=False)
            ]
        ) from None


def _invalid(errors: list[dict[str, str]]) -> PayloadError:
    """The 422 for field problems; the detail names paths only, never values (personal data)."""
    paths = list(dict.fromkeys(e["path"] for e in errors))
    shown = ", ".join(paths[:10]) + (", ..." if len(paths) > 10 else "")
    return PayloadError(422, "validation_failed", f"{len(errors)} field problem(s) in the call record: {shown}", errors)


def _event_id(value: Any, problems: _n.Problems) -> tuple[str, int | str]:
    """The event id: an integer or a non-empty string (stripped), the vendor's idempotency key."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), value
    if isinstance(value, str):
        raw = _n.raw_string(value, "id", problems)
        if raw is not None and not _storable(raw, "id", problems):
            return "", value
        if raw is not None and len(raw.strip()) > MAX_EVENT_ID_CHARS:
            problems.add("id", f"longer than {MAX_EVENT_ID_CHARS} characters")
            return "", value
        if raw is not None and raw.strip():
            return raw.strip(), value
        if raw is not None:
            problems.add("id", "must not be empty")
        return "", value
    problems.add(
        "id", "required" if value is _n.MISSING or value is None else "expected an integer or a non-empty string"
    )
    return "", 0


def _storable(value: str, path: str, problems: _n.Problems) -> bool:
    """Refuse a NUL character where the value becomes a ledger column (PostgreSQL text cannot hold
    it): the same 422 on every backend instead of a store error on one of them."""
    if "\x00" in value:
        problems.add(path, "contains a NUL character (\\u0000)")
        return False
    return True


def _pick(call: Mapping[str, Any], document: Mapping[str, Any], key: str, used_top: set[str]) -> tuple[Any, str]:
    """``call.<key>``, else the top-level ``<key>``: the vendor doc does not say where it lives."""
    if key in call or key not in document:
        return call.get(key), f"call.{key}"
    used_top.add(key)
    return document[key], key


def _outcome(value: Any, path: str, table: Mapping[str, StrEnum], problems: _n.Problems) -> Outcome:
    """An enumerated value mapped through its alias table; unknown values kept stripped."""
    raw = _n.raw_string(value, path, problems)
    canonical, known = _n.lookup(raw, table)
    return Outcome(value=canonical, raw=raw, known=known)


MAX_DURATION_S = 86_400
"""A call longer than a day is a sender's bug (a 4,000-digit duration once reached both CRMs): the event keeps
its call, the duration is capped and the event flagged ``duration_capped``; the sinks clamp to each field's range
as well."""


def _call(document: Mapping[str, Any], problems: _n.Problems, flags: set[str], used_top: set[str]) -> CallDetails:
    """The ``call`` object; required, because without it there is no outcome to record."""
    value = document.get("call", _n.MISSING)
    if not isinstance(value, dict):
        problems.add("call", "required" if value is _n.MISSING or value is None else "expected an object")
        value = {}
    end_raw, end_path = _pick(value, document, "end_reason", used_top)
    if isinstance(end_raw, str) and not _storable(end_raw, end_path, problems):
        end_raw = None
    end = _outcome(end_raw, end_path, END_REASON_ALIASES, problems)
    failure = _outcome(*_pick(value, document, "failure_reason", used_top), FAILURE_REASON_ALIASES, problems)
    if end.value is None:
        flags.add("end_reason_missing")
    elif not end.known:
        flags.add("end_reason_unknown")
    if failure.value is not None and not failure.known:
        flags.add("failure_reason_unknown")
    direction_raw = _n.raw_string(value.get("call_direction"), "call.call_direction", problems)
    direction = (direction_raw or "").strip().lower() or None
    if direction is not None and direction not in _DIRECTIONS:
        flags.add("direction_unknown")
    seconds, millis = _n.duration(value.get("duration"), "call.duration", problems)
    if seconds is not None and seconds > MAX_DURATION_S:
        seconds, millis = MAX_DURATION_S, MAX_DURATION_S * 1000
        flags.add("duration_capped")
    extra = {k: v for k, v in value.items() if k not in _CALL_KEYS}
    if extra:  # usually empty: no walk to set up
        _n.check_json(extra, "call", 2, problems)
    return CallDetails(
        end_reason=end,
        failure_reason=failure,
        telnyx_call_control_id=_n.text(value.get("telnyx_call_control_id"), "call.telnyx_call_control_id", problems),
        answered=_n.bool_like(value.get("answered"), "call.answered", problems),
        duration_seconds=seconds,
        duration_ms=millis,
        direction=direction,
        extra=extra,
    )


def _record(document: Mapping[str, Any], default_region: str, problems: _n.Problems, flags: set[str]) -> LeadRecord:
    """The ``record_*`` fields; phone and zone problems are flags, not rejections."""
    phone_value = document.get("record_phone_number")
    phone_raw: str | None = None
    if isinstance(phone_value, int) and not isinstance(phone_value, bool):
        phone_raw = str(phone_value)
    elif isinstance(phone_value, str):
        phone_raw = _n.raw_string(phone_value, "record_phone_number", problems)
    elif phone_value is not None:
        problems.add("record_phone_number", "expected a string or an integer")
    phone = Phone(**_n.phone(phone_raw, default_region))
    if phone.problem:
        flags.add("phone_missing" if phone.problem == "missing" else "phone_unparseable")
    tz_value = document.get("record_timezone")
    tz_raw = (
        _n.raw_string(tz_value, "record_timezone", problems)
        if isinstance(tz_value, str)
        else _n.text(tz_value, "record_timezone", problems)
    )  # -5 -> "-5"
    zone = LeadTimezone(**_n.timezone(tz_raw))
    if zone.problem:
        flags.add("timezone_missing" if zone.problem == "missing" else "timezone_unparseable")
    return LeadRecord(
        phone=phone,
        timezone=zone,
        zip_code=_n.text(document.get("record_zip_code"), "record_zip_code", problems),
        first_name=_n.text(document.get("record_first_name"), "record_first_name", problems),
        last_name=_n.text(document.get("record_last_name"), "record_last_name", problems),
    )


def _transcript(value: Any, problems: _n.Problems, flags: set[str]) -> list[TranscriptTurn]:
    """Turns in the order sent; roles normalized, content verbatim."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add("transcript", "expected a list or null")
        return []
    turns: list[TranscriptTurn] = []
    for index, item in enumerate(value):
        checked = _plain_turn(item) or _checked_turn(item, f"transcript[{index}]", problems)
        if checked is None:
            continue
        role_raw, content, extra = checked
        key = role_raw.strip().lower() if role_raw is not None else ""
        role = _ROLES.get(key, key or "unknown")
        if role not in _ROLE_NAMES:
            flags.add("transcript_role_unknown")
        turns.append(TranscriptTurn(role=role, role_raw=role_raw, content=content or "", extra=extra))
    return turns


_Turn = tuple[str | None, str | None, dict[str, Any]]
"""A turn's role as sent, its content and its other keys."""


def _plain_turn(item: Any) -> _Turn | None:
    """The usual turn, `{"role": "User", "content": "…"}` in ASCII, which no check can fault: taken as it is,
    without the per-field checks that cost as much as the rest of a webhook once a transcript runs to dozens of
    turns. Anything else returns None for `_checked_turn`."""
    if type(item) is not dict or not item.keys() <= _TURN_KEYS:
        return None
    role, content = item.get("role"), item.get("content")
    if (role is None or (type(role) is str and role.isascii())) and type(content) is str and content.isascii():
        return role, content, {}
    return None


def _checked_turn(item: Any, path: str, problems: _n.Problems) -> _Turn | None:
    """Any turn, each field checked and every problem recorded under its path; None when it is not an object."""
    if not isinstance(item, dict):
        problems.add(path, "expected an object")
        return None
    role_raw = _n.raw_string(item.get("role"), f"{path}.role", problems)
    content = item.get("content")
    if isinstance(content, (int, float)) and not isinstance(content, bool):
        ok = _n.text(content, f"{path}.content", problems) is not None  # rejects NaN/inf
        content = str(content) if ok else None
    else:
        content = _n.raw_string(content, f"{path}.content", problems)
    extra = {k: v for k, v in item.items() if k not in _TURN_KEYS}
    if extra:
        _n.check_json(extra, path, 3, problems)
    return role_raw, content, extra
