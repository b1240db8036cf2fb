"""From a body's bytes to a stored event or a quarantined body, with the HTTP answer for each.

Shared by the HTTP receiver and by quarantine replay, so a replayed body goes through exactly the
checks a posted one does. Knows nothing of Flask: the receiver handles auth, size and media type.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector._normalize import MAX_DEPTH, nested_too_deep
from connector.errors import PayloadError, StoreDataError
from connector.ledger import IngestStatus, Ledger, RejectedBody
from connector.mapping.loader import LoadedMapping
from connector.mapping.priority import sets_do_not_call
from connector.payload import CallEvent, Outcome, parse_webhook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def decode_json(body: bytes) -> object:
    """Parse a body as UTF-8 JSON (RFC 8259 §8.1), refusing NaN/Infinity and absurd nesting."""
    if not body.strip():
        raise PayloadError(400, "empty_body", "the body is empty; a post-call webhook is a JSON object")
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]  # a UTF-8 byte-order mark is tolerated (RFC 8259 §8.1 allows ignoring it)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(400, "invalid_encoding", "the body is not UTF-8 encoded JSON (RFC 8259 §8.1)") from None
    if nested_too_deep(text):  # before parsing: deep nesting is a classic way to exhaust a parser's stack
        raise PayloadError(400, "too_deeply_nested", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise PayloadError(
            400, "invalid_json", f"the body is not valid JSON: {_json_error_reason(exc)}{where}"
        ) from None


def _json_error_reason(exc: ValueError | RecursionError) -> str:
    """The parser's reason in words a sender can act on (never the value itself)."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg.removesuffix(" at")  # "Invalid control character at": the position follows
    if "integer string conversion" in str(exc):  # Python reads at most sys.get_int_max_str_digits() digits
        return f"an integer has more than {sys.get_int_max_str_digits():,} digits"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    return str(exc)  # _reject_constant's "NaN is not a JSON number"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def content_hash(document: object) -> str:
    """Hash of the canonical JSON form: the same event re-serialized differently is a duplicate, not a conflict."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_body(body: bytes, *, default_region: str) -> tuple[object, CallEvent]:
    """Decode and normalize; raise PayloadError for anything that is not a usable call record."""
    document = decode_json(body)
    try:
        return document, parse_webhook(document, default_region=default_region)
    except PayloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place a normalizer bug must not become a 5xx
        log.exception("normalization failed unexpectedly (%s); body quarantined", exc.__class__.__name__)
        raise PayloadError(422, "normalization_failed", "the payload could not be normalized") from exc


def warm_up(default_region: str) -> None:
    """Normalize two sample bodies once, so that what a first webhook would load lazily (phonenumbers'
    region metadata and patterns, the IANA zone list, pydantic's validators) is loaded already.

    `connector serve` calls it before gunicorn forks: every worker then starts with it in memory
    (shared copy-on-write) instead of paying for it, each, on its first requests.
    """
    from connector.sample import sample_payload

    for zone in ("UTC-5", "America/New_York"):
        document = sample_payload("warm-up", record_timezone=zone)
        event = parse_webhook(document, default_region=default_region)
        event.model_dump_json()
        content_hash(document)


def ingest(
    body: bytes,
    content_type: str | None,
    *,
    ledger: Ledger,
    default_region: str,
    sinks: list[str],
    mappings: Mapping[str, LoadedMapping] | None = None,
) -> Reply:
    """Store the body as an event (202/200/409) or quarantine it (400/422).

    Raises StoreError when the ledger is down: the caller answers 503 and 2X retries.
    """
    try:
        document, event = parse_body(body, default_region=default_region)
    except PayloadError as exc:
        return reject(ledger, exc, body, content_type, event_id=_id_if_any(body))
    do_not_call = any(sets_do_not_call(event, m) for m in mappings.values()) if mappings else None
    try:
        result = ledger.record_event(
            event,
            body=body,
            content_type=content_type,
            content_hash=content_hash(document),
            sinks=sinks,
            do_not_call=do_not_call,
        )
    except StoreDataError:
        # The store refused a value of this body (validation should have caught it first): a body
        # problem, so 422 + quarantine, never a 503 that 2X would retry without end.
        error = PayloadError(422, "unstorable", "the store cannot hold a value of this call record")
        return reject(ledger, error, body, content_type, event_id=_id_if_any(body))
    if result.status is IngestStatus.ACCEPTED:
        log.info("event accepted", extra={"event_id": event.id, "end_reason": _loggable(event.call.end_reason)})
        return Reply(202, {"id": event.id, "status": "accepted"})
    if result.status is IngestStatus.DUPLICATE:
        log.info("duplicate event ignored", extra={"event_id": event.id})
        return Reply(200, {"id": event.id, "status": "duplicate"})
    log.warning("event id reused with a different body", extra={"event_id": event.id})
    return Reply(
        409,
        {
            "error": "id_conflict",
            "detail": "this id was already accepted with a different body; the new body is quarantined",
            "id": event.id,
            "quarantine_id": result.quarantine_id,
        },
    )


def reject(
    ledger: Ledger,
    error: PayloadError,
    body: bytes,
    content_type: str | None,
    *,
    truncated: bool = False,
    event_id: str | None = None,
) -> Reply:
    """Quarantine a refused body and build the JSON error answer."""
    quarantine_id = ledger.quarantine(
        RejectedBody(
            body=body,
            content_type=content_type,
            http_status=error.status,
            code=error.code,
            detail=error.detail,
            errors=error.errors,
            truncated=truncated,
            event_id=event_id,
        )
    )
    log.warning(
        "body rejected and quarantined",
        extra={"status": error.status, "code": error.code, "quarantine_id": quarantine_id, "event_id": event_id},
    )
    payload: dict[str, Any] = {"error": error.code, "detail": error.detail, "quarantine_id": quarantine_id}
    if error.errors:
        payload["errors"] = error.errors
    return Reply(error.status, payload)


def _id_if_any(body: bytes) -> str | None:
    """The `id` of a refused body when it has a usable one, to find it again in quarantine."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(document, dict)
        and isinstance(document.get("id"), (int, str))
        and not isinstance(document["id"], bool)
    ):
        # Kept whole (a text column) so it can be found again; NUL escaped: PostgreSQL text cannot hold it.
        return str(document["id"]).strip().replace("\x00", "\\u0000") or None
    return None


UNKNOWN_END_REASON = "unknown"


def _loggable(reason: Outcome) -> str | None:
    """A documented end_reason as is; any other is the sender's free text (it may hold a name or a phone number,
    which logs never carry), so it reads `unknown` (the stored event keeps it verbatim)."""
    if reason.value is None:
        return None
    return reason.value if reason.known else UNKNOWN_END_REASON
