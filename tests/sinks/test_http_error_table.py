"""The http sink's error classification, one row per answer: (request, status or transport failure) → error class.

Driven through the real sink and requests against a scripted loopback server, so the table is what a retry,
a pause or a dead letter will really be decided on. The rule under test (connector/sinks/http.py): a write
whose answer is lost or is a 5xx may have been applied (OutcomeUnknown, looked up before it is sent again);
a request that never connected, a 408, a 429 or a read (lookup) never is.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connector.errors import AuthError, OutcomeUnknown, PermanentError, RateLimited, SinkError, TransientError
from connector.plan import CreateActivity
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.http import HttpSink, HttpSinkSettings
from tests.support.net import free_port


@dataclass
class Answer:
    """What the scripted server does with one request."""

    status: int = 200
    body: bytes = b'{"id": "1"}'
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without answering (the request was read: the endpoint may have applied it)."""
    delay_s: float = 0.0


@dataclass
class Script:
    answers: list[Answer] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append((self.command, self.path))
            answer = script.answers.pop(0) if script.answers else Answer()
            time.sleep(answer.delay_s)
            if answer.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = _answer
        do_POST = _answer

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


class _Gate:
    def wait(self, cost: int = 1) -> None:
        return None


def _sink(url: str, timeout_s: float = 5.0) -> HttpSink:
    sink = HttpSink("web", HttpSinkSettings(type="http", url=url, timeout_s=timeout_s))
    sink.open(_Gate())
    return sink


ACTION = CreateActivity(
    key="evt-1:activity",
    object="call",
    idempotency_key="evt-1:activity",
    idempotency_property="idempotency_key",
    properties={"outcome": "answered"},
)
CONTEXT = ExecutionContext()


def _write(sink: HttpSink) -> ActionResult:
    return sink.execute(ACTION, CONTEXT)


def _read(sink: HttpSink) -> ActionResult | None:
    return sink.lookup(ACTION, CONTEXT)


def _http_date(seconds_ahead: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


# (row id, request, answer, expected class, expected retry_after (None: don't care))
ROWS: list[tuple[str, Callable[[HttpSink], object], Answer, type[SinkError], float | None]] = [
    ("401 write", _write, Answer(401, b'{"message": "bad token"}'), AuthError, None),
    ("403 read", _read, Answer(403, b'{"message": "forbidden"}'), AuthError, None),
    ("429 seconds", _write, Answer(429, b"slow down", {"Retry-After": "7"}), RateLimited, 7.0),
    ("429 no header", _write, Answer(429, b"slow down"), RateLimited, None),
    ("400 write", _write, Answer(400, b'{"message": "owner_id must be a number"}'), PermanentError, None),
    ("404 write", _write, Answer(404, b"no such route"), PermanentError, None),
    ("409 write", _write, Answer(409, b"conflict"), PermanentError, None),
    ("422 write", _write, Answer(422, b"invalid"), PermanentError, None),
    ("408 write", _write, Answer(408, b"request timeout"), TransientError, None),
    ("500 write", _write, Answer(500, b"oops"), OutcomeUnknown, None),
    ("502 write", _write, Answer(502, b"<html>bad gateway</html>"), OutcomeUnknown, None),
    ("503 write with Retry-After", _write, Answer(503, b"busy", {"Retry-After": "30"}), OutcomeUnknown, 30.0),
    ("500 read", _read, Answer(500, b"oops"), TransientError, None),
    ("dropped write", _write, Answer(drop=True), OutcomeUnknown, None),
    ("dropped read", _read, Answer(drop=True), TransientError, None),
    ("2xx write, not JSON", _write, Answer(200, b"<html>ok</html>"), OutcomeUnknown, None),
]


@pytest.mark.parametrize(
    ("request_", "answer", "expected", "wait"), [row[1:] for row in ROWS], ids=[r[0] for r in ROWS]
)
def test_each_answer_lands_in_its_class(
    server: tuple[str, Script],
    request_: Callable[[HttpSink], object],
    answer: Answer,
    expected: type[SinkError],
    wait: float | None,
) -> None:
    url, script = server
    script.answers.append(answer)
    with pytest.raises(SinkError) as raised:
        request_(_sink(url))
    assert type(raised.value) is expected, f"{type(raised.value).__name__}: {raised.value}"
    if wait is not None:
        assert raised.value.retry_after == wait
    if 400 <= answer.status < 500 and not answer.drop:
        assert raised.value.crm_message == answer.body.decode()  # the endpoint's words reach the dead letter
    assert len(script.seen) == 1  # sent once: retrying is the engine's decision, not the sink's


def test_a_retry_after_date_is_a_wait_in_seconds(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append(Answer(429, b"slow down", {"Retry-After": _http_date(120)}))
    with pytest.raises(RateLimited) as raised:
        _write(_sink(url))
    assert raised.value.retry_after is not None and 100 < raised.value.retry_after <= 120


def test_a_read_timeout_on_a_write_is_outcome_unknown(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append(Answer(delay_s=1.0))
    with pytest.raises(OutcomeUnknown):
        _write(_sink(url, timeout_s=0.2))


def test_a_refused_connection_never_wrote() -> None:
    with pytest.raises(TransientError) as raised:
        _write(_sink(f"http://127.0.0.1:{free_port()}"))
    assert type(raised.value) is TransientError  # not OutcomeUnknown: the request never left


def test_after_a_lost_answer_the_write_is_looked_up_before_it_is_sent_again(server: tuple[str, Script]) -> None:
    url, script = server
    sink = _sink(url)
    script.answers += [Answer(drop=True), Answer(200, b'{"id": "41"}')]  # the POST was applied, then found
    with pytest.raises(OutcomeUnknown):
        _write(sink)
    found = _write(sink)
    assert found.crm_id == "41"
    assert [method for method, _ in script.seen] == ["POST", "GET"]  # no second POST


def test_a_lost_write_that_never_landed_is_sent_again_once(server: tuple[str, Script]) -> None:
    url, script = server
    sink = _sink(url)
    script.answers += [Answer(502, b"bad gateway"), Answer(404, b"not found"), Answer(201, b'{"id": "42"}')]
    with pytest.raises(OutcomeUnknown):
        _write(sink)
    written = _write(sink)
    assert (written.crm_id, written.created) == ("42", True)
    assert [method for method, _ in script.seen] == ["POST", "GET", "POST"]
    script.answers.append(Answer(201, b'{"id": "43"}'))
    _write(sink)  # settled: a later write of the same key is not looked up again
    assert [method for method, _ in script.seen][-1:] == ["POST"] and len(script.seen) == 4
