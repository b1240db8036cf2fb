"""The webhook endpoint 2X posts to: authenticate, bound the body, check the media type, ingest.

Order matters. Authentication comes first, so an unauthenticated sender can make us store nothing
and learn nothing. The size check uses Content-Length before reading and caps the read itself, so
a huge body never lands in memory. Every refusal after authentication is quarantined.

A POST to the webhook's path is answered by `WebhookRoute`, a WSGI layer in front of Flask, with
werkzeug's request object and an answer written straight to the server: Flask's dispatch (request and app
contexts, URL matching, signals, the before/after hooks, none of which this endpoint uses) cost about 60 µs of
CPU per request against 20 µs for werkzeug's objects alone, on a path that is otherwise about 500 µs
(`python bench/ingest_profile.py` measures the receiver in process). Everything else at that path
(GET → 405, a trailing slash → redirect) still goes to Flask, where the route stays registered.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response

from connector.config import Settings
from connector.errors import PayloadError, StoreError
from connector.ledger import Ledger
from connector.metrics import process_metrics
from connector.receiver.ingest import Reply, ingest, reject
from connector.receiver.outage import OutageLog

log = logging.getLogger(__name__)

EXTENSION_KEY = "connector"
_CHUNK = 64 * 1024
_DRAIN_CAP = 32 * 1024 * 1024
"""After refusing an oversized body, read and discard up to this much of the rest, so that the
sender sees our 413 instead of a connection reset while it is still writing."""


class ReceiverState:
    """What the receiver needs, attached to the app instead of living in module globals."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        self.tokens = [t.get_secret_value().encode("utf-8") for t in settings.receiver.auth.tokens]
        self.mappings = _mappings_for_priority(settings)
        self.metrics, self.metrics_registry = process_metrics(ledger, settings.sinks, settings)
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in settings.receiver.allowed_sources]
        """Used only to put do-not-call deliveries first; a broken mapping never blocks receiving."""
        self._responses: dict[int, Any] = {}
        self.outage = OutageLog()

    def responses_counter(self, status: int) -> Any:
        """The answers counter's child for one status, looked up once per process (labels() takes a lock)."""
        child = self._responses.get(status)
        if child is None:
            child = self._responses[status] = self.metrics.http_responses.labels(status=str(status))
        return child


def _mappings_for_priority(settings: Settings) -> dict[str, Any]:
    from connector.errors import ConfigError
    from connector.mapping.sinks import load_sink_mappings

    try:
        return load_sink_mappings(settings)
    except ConfigError as exc:
        log.warning("mappings not loaded at the receiver (do-not-call priority falls back to end_reason): %s", exc)
        return {}


def state() -> ReceiverState:
    return current_app.extensions[EXTENSION_KEY]


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def init_app(app: Flask, settings: Settings, ledger: Ledger) -> None:
    """Attach settings and ledger to the app, register the webhook route at the configured path and put
    `WebhookRoute` in front of Flask for it."""
    current = app.extensions[EXTENSION_KEY] = ReceiverState(settings, ledger)
    blueprint = Blueprint("receiver", __name__)
    blueprint.add_url_rule(settings.receiver.path, "post_call", _post_call, methods=["POST"])
    app.register_blueprint(blueprint)
    app.wsgi_app = WebhookRoute(app.wsgi_app, current)  # type: ignore[method-assign]


class WebhookRoute:
    """WSGI layer: a POST to the webhook's exact path is answered here, anything else goes on to Flask."""

    def __init__(self, flask_app: WsgiApp, current: ReceiverState) -> None:
        self._next = flask_app
        self._state = current
        self._path = current.settings.receiver.path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self._path or environ.get("REQUEST_METHOD") != "POST":
            return self._next(environ, start_response)
        reply = _respond(self._state, Request(environ))
        # Straight to the server, as werkzeug's Response would write it (same status line and headers): its
        # object, header list and WSGI iterator cost more than the rest of the answer.
        body = _json_bytes(reply)
        headers = [*reply.headers.items(), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(_status_line(reply.status), headers)
        return [body]


def _post_call() -> Response:
    """The Flask view, for a POST that reaches Flask anyway (a WSGI stack built without `init_app`'s layer)."""
    reply = _respond(state(), request._get_current_object())  # type: ignore[attr-defined]
    return Response(_json_bytes(reply), status=reply.status, headers=reply.headers, mimetype="application/json")


def _respond(current: ReceiverState, incoming: Request) -> Reply:
    try:
        reply = _answer(current, incoming)
    except Exception as exc:  # noqa: BLE001 - what Flask's handler in connector.app does for its own routes
        log.exception("unhandled error: %s", exc.__class__.__name__)
        reply = Reply(500, {"error": "internal_error", "detail": "the request failed; nothing was acknowledged"})
    current.responses_counter(reply.status).inc()
    return reply


@cache
def _status_line(status: int) -> str:
    """`202 ACCEPTED`: werkzeug's spelling, so the answer does not change with the path that wrote it."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"


def _answer(current: ReceiverState, incoming: Request) -> Reply:
    if current.allowed and not _source_allowed(incoming.remote_addr, current.allowed):
        return Reply(403, {"error": "forbidden", "detail": "this address may not post webhooks"})
    if not _authorized(incoming.headers.get(current.settings.receiver.auth.header), current.tokens):
        return Reply(401, {"error": "unauthorized", "detail": "missing or invalid credentials"})
    try:
        reply = _accept(current, incoming)
    except StoreError as exc:
        current.outage.refused(exc)
        return Reply(
            503, {"error": "store_unavailable", "detail": "the event was not stored; retry later"}, {"Retry-After": "5"}
        )
    current.outage.stored()
    return reply


def _accept(current: ReceiverState, incoming: Request) -> Reply:
    limit = current.settings.receiver.max_body_bytes
    content_type = incoming.headers.get("Content-Type")
    body, too_large = _read_capped(incoming, limit)
    if too_large:
        error = PayloadError(413, "body_too_large", f"the body exceeds the limit of {limit} bytes")
        return reject(current.ledger, error, body, content_type, truncated=True)
    media_problem = _media_type_problem(incoming.mimetype, incoming.mimetype_params)
    if media_problem:
        return reject(current.ledger, PayloadError(415, "unsupported_media_type", media_problem), body, content_type)
    encoding = (incoming.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        # RFC 9110 §15.5.16: 415 for a content coding the server does not accept. Decoding gzip here would
        # also mean capping what it inflates to; 2X sends plain JSON.
        detail = f"Content-Encoding {encoding} is not supported; send the JSON uncompressed"
        return reject(current.ledger, PayloadError(415, "unsupported_content_encoding", detail), body, content_type)
    return ingest(
        body,
        content_type,
        ledger=current.ledger,
        default_region=current.settings.phone.default_region,
        sinks=current.settings.enabled_sinks(),
        mappings=current.mappings,
    )


def _source_allowed(address: str | None, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _authorized(presented: str | None, tokens: list[bytes]) -> bool:
    """Exact match against every configured token, in constant time, without short-circuiting."""
    if presented is None:
        return False
    candidate = presented.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token)
    return matched


def _read_capped(incoming: Request, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` bytes of the body; report whether more was there."""
    declared = incoming.content_length
    stream = incoming.stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    too_large = size > limit or (declared is not None and declared > limit)
    if too_large:
        _drain(stream)
    return body[:limit], too_large


def _drain(stream: Any) -> None:
    drained = 0
    while drained < _DRAIN_CAP:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        drained += len(chunk)


def _media_type_problem(mimetype: str, params: dict[str, str]) -> str | None:
    if not mimetype:
        return "the Content-Type header is missing; send application/json"
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        return f"Content-Type {mimetype} is not JSON; send application/json"
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        return f"charset {charset} is not supported; JSON is UTF-8 (RFC 8259 §8.1)"
    return None


def _json_bytes(reply: Reply) -> bytes:
    """The reply's body as Flask's `jsonify` would write it outside debug mode (compact, ASCII, a final newline)."""
    return (json.dumps(reply.body, separators=(",", ":")) + "\n").encode("ascii")
