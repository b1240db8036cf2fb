"""The HubSpot sink's error classification as a table: HubSpot's answer → the connector's error class.

Why a table through the real client: the engine decides a delivery's fate by the error class alone, and
hubspot-api-client raises per-module exceptions (and lets urllib3's through), so each row goes through the real SDK
over loopback, against a tiny server answering HubSpot's own error bodies (built with the emulator's
``connector.emulators.hubspot.errors``, which records where each shape was observed). Each request must be sent
exactly once: urllib3's own retries are off.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.config import HubSpotSinkSettings
from connector.emulators.hubspot import errors as hs
from connector.errors import (
    AuthError,
    MissingFields,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    SinkError,
    StaleContact,
    TransientError,
)
from connector.plan import FieldUpdate, UpdateContact
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import refusals, refused_in
from connector.sinks.hubspot import client as hubspot_client
from connector.sinks.hubspot.client import HubSpotApi
from connector.sinks.hubspot.errors import existing_id
from connector.sinks.hubspot.sink import HubSpotSink

TOKEN = "error-table-token"


@dataclass
class Script:
    """How the server answers every request: ``mode`` answer / reset (RST) / close (no answer) / hang."""

    status: int = 200
    body: bytes | Callable[[dict[str, Any]], bytes] = b"{}"
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    """Values, or callables giving them when the request comes (an HTTP date relative to now)."""
    mode: str = "answer"
    content_type: str = "application/json;charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script = Script()
    requests: list[tuple[str, str]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A reset or closed connection is the point of some rows: nothing to report."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path))
        script = self.server.script
        if script.mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if script.mode == "close":
            self.close_connection = True
            return
        if script.mode == "hang":
            time.sleep(1.5)
        body = script.body(json.loads(raw or b"{}")) if callable(script.body) else script.body
        self.send_response(script.status)
        for name, value in {"Content-Type": script.content_type, **script.headers}.items():
            self.send_header(name, value() if callable(value) else value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    running = _Server(("127.0.0.1", 0), _Handler)
    running.requests = []
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture
def url(server: _Server, monkeypatch: pytest.MonkeyPatch) -> str:
    server.requests.clear()
    server.script = Script()
    monkeypatch.setattr(hubspot_client, "REQUEST_TIMEOUT", (2.0, 0.5))  # the hang row waits 1.5 s
    return f"http://127.0.0.1:{server.server_address[1]}"


class Gate:
    def wait(self, cost: int = 1) -> None:
        pass


def body(error: hs.HubSpotError) -> bytes:
    return json.dumps(error.body).encode()


def missing_property(request: dict[str, Any]) -> bytes:
    """HubSpot's PROPERTY_DOESNT_EXIST refusal naming the first property the request sent."""
    name = next(iter(request.get("properties") or {"twox_unknown": ""}))
    issue = hs.PropertyIssue(name, "", "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
    return body(hs.property_values_invalid([issue]))


def in_seconds(seconds: int) -> Callable[[], str]:
    """An HTTP date ``seconds`` after the moment the server answers."""
    return lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


# (id, script, error class (exact), status, code, retry_after: a number, a (low, high) range, or None)
ROWS: list[tuple[str, Script, type[SinkError], int | None, str | None, Any]] = [
    ("401", Script(401, body(hs.unauthorized())), AuthError, 401, "INVALID_AUTHENTICATION", None),
    (
        "403-missing-scopes",
        Script(
            403,
            json.dumps(
                hs.error_body(
                    "This app hasn't been granted all required scopes to make this call.",
                    "MISSING_SCOPES",
                    errors=[
                        {
                            "message": "One or more of the following scopes are required.",
                            "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
                        }
                    ],
                )
            ).encode(),
        ),
        AuthError,
        403,
        "MISSING_SCOPES",
        None,
    ),
    (
        "429-ten-secondly",
        Script(429, body(hs.rate_limited("TEN_SECONDLY_ROLLING"))),
        RateLimited,
        429,
        "TEN_SECONDLY_ROLLING",
        10.0,
    ),
    (
        "429-interval-header",
        Script(
            429,
            body(hs.rate_limited("TEN_SECONDLY_ROLLING")),
            {"X-HubSpot-RateLimit-Interval-Milliseconds": "2000", "X-HubSpot-RateLimit-Remaining": "0"},
        ),
        RateLimited,
        429,
        "TEN_SECONDLY_ROLLING",
        2.0,
    ),
    (
        "429-retry-after-seconds",
        Script(429, body(hs.rate_limited("TEN_SECONDLY_ROLLING")), {"Retry-After": "7"}),
        RateLimited,
        429,
        "TEN_SECONDLY_ROLLING",
        7.0,
    ),
    (
        "429-retry-after-date",
        Script(429, body(hs.rate_limited("TEN_SECONDLY_ROLLING")), {"Retry-After": in_seconds(600)}),
        RateLimited,
        429,
        "TEN_SECONDLY_ROLLING",
        (500.0, 600.0),
    ),
    ("429-secondly", Script(429, body(hs.rate_limited("SECONDLY"))), RateLimited, 429, "SECONDLY", 1.0),
    ("429-daily", Script(429, body(hs.rate_limited("DAILY"))), RateLimited, 429, "DAILY", (60.0, 3660.0)),
    (
        "400-property-doesnt-exist",
        Script(400, missing_property),
        PermanentError,
        400,
        "PROPERTY_DOESNT_EXIST",
        None,
    ),
    (
        "400-invalid-option",
        Script(
            400,
            body(hs.property_values_invalid([hs.PropertyIssue("hs_call_status", "X", "INVALID_OPTION", "bad")])),
        ),
        PermanentError,
        400,
        "INVALID_OPTION",
        None,
    ),
    (
        "400-invalid-object-ids-contact",
        Script(400, body(hs.associations_invalid({"INVALID_OBJECT_IDS": ["CONTACT=424242 is not valid"]}))),
        StaleContact,
        400,
        "INVALID_OBJECT_IDS",
        None,
    ),
    ("404-not-found", Script(404, body(hs.not_found("x1"))), PermanentError, 404, "OBJECT_NOT_FOUND", None),
    ("409-conflict", Script(409, body(hs.contact_exists("5150"))), PermanentError, 409, "CONFLICT", None),
    ("408", Script(408, body(hs.fail(408, "Request timed out"))), TransientError, 408, None, None),
    ("423-locked", Script(423, body(hs.fail(423, "locked", "LOCKED"))), TransientError, 423, "LOCKED", 2.0),
    (
        "477-migration",
        Script(477, body(hs.fail(477, "migrating", "MIGRATION_IN_PROGRESS")), {"Retry-After": "60"}),
        TransientError,
        477,
        "MIGRATION_IN_PROGRESS",
        60.0,
    ),
    ("500", Script(500, body(hs.fail(500, "internal error", "INTERNAL_ERROR"))), OutcomeUnknown, 500, None, None),
    (
        "502-html",
        Script(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
        OutcomeUnknown,
        502,
        None,
        None,
    ),
    (
        "503-retry-after",
        Script(503, body(hs.fail(503, "unavailable", "SERVICE_UNAVAILABLE")), {"Retry-After": "5"}),
        OutcomeUnknown,
        503,
        "SERVICE_UNAVAILABLE",
        5.0,
    ),
    ("504", Script(504, body(hs.fail(504, "gateway timeout", "GATEWAY_TIMEOUT"))), OutcomeUnknown, 504, None, None),
    ("connection-reset", Script(mode="reset"), OutcomeUnknown, None, None, None),
    ("closed-without-answer", Script(mode="close"), OutcomeUnknown, None, None, None),
    ("read-timeout", Script(mode="hang"), OutcomeUnknown, None, None, None),
]


@pytest.mark.parametrize(("script", "kind", "status", "code", "wait"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_a_hubspot_answer_becomes_one_error_class(
    server: _Server,
    url: str,
    script: Script,
    kind: type[SinkError],
    status: int | None,
    code: str | None,
    wait: Any,
) -> None:
    server.script = script
    api = HubSpotApi(TOKEN, url, Gate())
    try:
        with pytest.raises(SinkError) as caught:
            api.create("calls", {"hs_call_title": "x", "twox_idempotency_key": "k"}, [])
    finally:
        api.close()
    error = caught.value
    assert type(error) is kind, f"{type(error).__name__}: {error}"
    assert error.status == status
    if code is not None:
        assert error.code == code
    if isinstance(wait, tuple):
        assert error.retry_after is not None and wait[0] <= error.retry_after <= wait[1]
    else:
        assert error.retry_after == wait
    assert server.requests == [("POST", "/crm/v3/objects/calls")]  # sent once: no urllib3 retry


def test_hubspot_message_and_refused_properties_are_kept(server: _Server, url: str) -> None:
    server.script = Script(400, missing_property)
    api = HubSpotApi(TOKEN, url, Gate())
    with pytest.raises(PermanentError) as caught:
        api.create("calls", {"twox_q_new": "yes", "hs_call_title": "x"}, [])
    api.close()
    assert caught.value.details == [
        {"code": "PROPERTY_DOESNT_EXIST", "message": 'Property "twox_q_new" does not exist', "fields": ["twox_q_new"]}
    ]
    assert refused_in(refusals(caught.value), ["twox_q_new", "hs_call_title"], "calls") == {
        "twox_q_new": "PROPERTY_DOESNT_EXIST"
    }
    assert (caught.value.crm_message or "").startswith("Property values were not valid")


def test_the_existing_contact_id_is_read_from_a_409(server: _Server, url: str) -> None:
    server.script = Script(409, body(hs.contact_exists("5150")))
    api = HubSpotApi(TOKEN, url, Gate())
    with pytest.raises(PermanentError) as caught:
        api.create("contacts", {"email": "a@example.com"}, [])
    api.close()
    assert existing_id(caught.value) == "5150"


def test_a_refused_connection_sent_nothing(url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    api = HubSpotApi(TOKEN, closed, Gate())
    with pytest.raises(SinkError) as caught:
        api.create("calls", {"hs_call_title": "x"}, [])
    api.close()
    assert type(caught.value) is TransientError and "unreachable" in str(caught.value)


# -- through the sink: what it makes of an update's refusal --------------------------------------------------

CONTACT = ActionResult(crm_id="7001", object="contacts")
UPDATE = UpdateContact(
    key="e1:update",
    fields=[
        FieldUpdate(
            property="twox_last_outcome",
            value="callback",
            rule="always",
            rank=0,
            call_time=datetime(2026, 11, 26, tzinfo=UTC),
        )
    ],
)


def updating_sink(url: str, **settings: Any) -> HubSpotSink:
    sink = HubSpotSink("hs", HubSpotSinkSettings(type="hubspot", access_token=TOKEN, base_url=url, **settings))
    sink.open(Gate())
    return sink


@pytest.mark.parametrize(
    ("script", "settings", "kind"),
    [
        (Script(404, body(hs.not_found("7001"))), {}, StaleContact),
        (Script(400, missing_property), {"on_missing_field": "hold"}, MissingFields),
        (Script(401, body(hs.unauthorized())), {}, AuthError),
    ],
    ids=["404-contact-gone", "missing-property-held", "401"],
)
def test_an_update_refusal_through_the_sink(
    server: _Server, url: str, script: Script, settings: dict[str, Any], kind: type[SinkError]
) -> None:
    server.script = script
    sink = updating_sink(url, **settings)
    try:
        with pytest.raises(SinkError) as caught:
            sink.execute(UPDATE, ExecutionContext(results={"e1:contact": CONTACT}))
    finally:
        sink.close()
    assert type(caught.value) is kind
    assert server.requests[0] == ("PATCH", "/crm/v3/objects/contacts/7001")
    if isinstance(caught.value, MissingFields):
        assert caught.value.fields == {"contacts.twox_last_outcome": "PROPERTY_DOESNT_EXIST"}


def test_a_missing_property_is_skipped_by_default(server: _Server, url: str) -> None:
    """The default drift policy: the refused property is left out and the rest sent again (here: nothing left)."""
    server.script = Script(400, missing_property)
    sink = updating_sink(url)
    try:
        result = sink.execute(UPDATE, ExecutionContext(results={"e1:contact": CONTACT}))
    finally:
        sink.close()
    assert result.skipped and result.detail["skipped_fields"] == {"twox_last_outcome": "PROPERTY_DOESNT_EXIST"}
