"""How the Salesforce sink classifies each way Salesforce (or the network) can fail a request, as one table.

Why a table: the engine decides a delivery's fate by the error class alone (retry, look up first, wait out a limit,
pause the sink, dead-letter), so every (HTTP status, ``errorCode``) pair Salesforce documents must land in the
right class. Each row goes through the real simple-salesforce over loopback HTTPS to a tiny server that answers
with Salesforce's own error body (``[{"message", "errorCode", "fields"}]``) or misbehaves (a read timeout, a reset
connection, nothing listening); the sink writes one call Task through its Composite path. The error codes and
statuses are Salesforce's [docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
errorcodes.htm; status codes: .../api_rest/errorcodes.htm "HTTP Status Codes and Error Responses"].
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from connector.config import SalesforceSinkSettings
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
from connector.plan import CreateActivity
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.salesforce import client as salesforce_client
from connector.sinks.salesforce.sink import SalesforceSink

Answer = Callable[[BaseHTTPRequestHandler], None]
DESCRIBED = {
    "Task": [("Subject", "string", 255), ("Description", "textarea", 32000), ("CallObject", "string", 255)],
    "Contact": [("LastName", "string", 80)],
    "Lead": [("LastName", "string", 80)],
}
QUERY_EMPTY = {"totalSize": 0, "done": True, "records": []}


def errors(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """A Salesforce REST error body: a list of {message, errorCode, fields}."""
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def send(handler: BaseHTTPRequestHandler, status: int, body: Any, content_type: str = "application/json") -> None:
    data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def status(code: int, body: Any, content_type: str = "application/json") -> Answer:
    return lambda handler: send(handler, code, body, content_type)


def subresponse(code: int, body: Any) -> Answer:
    """A Composite answer (always 200) whose write subrequest failed with ``code`` and ``body``."""
    return status(200, {"compositeResponse": [{"body": body, "httpStatusCode": code, "referenceId": "action0"}]})


def created(handler: BaseHTTPRequestHandler) -> None:
    send(
        handler,
        200,
        {
            "compositeResponse": [
                {"body": {"id": "00T000000000001AAA", "success": True, "errors": []}, "httpStatusCode": 201}
                | {"referenceId": "action0"}
            ]
        },
    )


def time_out(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)  # the sink's read timeout is cut to 0.2 s for this table


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then drop the connection with a TCP RST (SO_LINGER 0): no answer at all."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()


@dataclass
class FakeOrg:
    """Answers describes like an org; every other request with the next scripted answer (then a success)."""

    script: list[Answer]
    requests: list[tuple[str, str]]

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"null")
        self.requests.append((method, handler.path))
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if subrequests and all(s["url"].endswith("/describe") for s in subrequests):
            return send(handler, 200, {"compositeResponse": [_describe(s) for s in subrequests]})
        if self.script:
            return self.script.pop(0)(handler)
        if "/query" in handler.path:
            return send(handler, 200, QUERY_EMPTY)
        return created(handler)


def _describe(subrequest: dict[str, Any]) -> dict[str, Any]:
    name = subrequest["url"].split("/sobjects/")[1].split("/")[0]
    fields = [{"name": n, "type": t, "length": length} for n, t, length in DESCRIBED[name]]
    return {"body": {"name": name, "fields": fields}, "httpStatusCode": 200, "referenceId": subrequest["referenceId"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOrg, str, str]]:
    ca = trustme.CA()
    ca_file = str(Path(tmp_path_factory.mktemp("ca")) / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    org = FakeOrg([], [])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            org.answer(self, "GET")

        def do_POST(self) -> None:
            org.answer(self, "POST")

        def do_PATCH(self) -> None:
            org.answer(self, "PATCH")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    http.socket = context.wrap_socket(http.socket, server_side=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield org, f"https://127.0.0.1:{http.server_port}", ca_file
    finally:
        http.shutdown()
        http.server_close()


def open_sink(instance_url: str, ca_file: str) -> SalesforceSink:
    sink = SalesforceSink(
        "sf",
        SalesforceSinkSettings(
            type="salesforce", instance_url=instance_url, ca_bundle=ca_file, auth={"session_id": "00D!session"}
        ),
    )

    class Gate:
        def wait(self, cost: int = 1) -> None:
            pass

    sink.open(Gate())
    return sink


ACTIVITY = CreateActivity(
    key="2x-7:activity",
    object="Task",
    idempotency_key="2x-7",
    idempotency_property="CallObject",
    properties={"Subject": "Call", "Description": "Talked about the offer"},
    associate_with_contact=False,
)
LIMITS = "TotalRequests Limit exceeded."
CONCURRENT = "ConcurrentPerOrgLongTxn Limit exceeded."
NO_SUCH_COLUMN = "No such column 'Description' on sobject of type Task"
LOCKED = "unable to obtain exclusive access to this record or 1 records: 00T000000000001AAA"
HTML_500 = "<html><body>An internal server error has occurred</body></html>"

# (id, answer, error class, errorCode): the whole request fails
WHOLE_REQUEST: list[tuple[str, Answer, type[SinkError], str | None]] = [
    (
        "INVALID_SESSION_ID 401",
        status(401, errors("INVALID_SESSION_ID", "Session expired or invalid")),
        AuthError,
        "INVALID_SESSION_ID",
    ),
    (
        "INVALID_AUTH_HEADER 401",
        status(401, errors("INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE")),
        AuthError,
        "INVALID_AUTH_HEADER",
    ),
    (
        "API_DISABLED_FOR_ORG 403",
        status(403, errors("API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner")),
        AuthError,
        "API_DISABLED_FOR_ORG",
    ),
    (
        "REQUEST_LIMIT_EXCEEDED 403 daily",
        status(403, errors("REQUEST_LIMIT_EXCEEDED", LIMITS)),
        RateLimited,
        "REQUEST_LIMIT_EXCEEDED",
    ),
    (
        "REQUEST_LIMIT_EXCEEDED 403 concurrent",
        status(403, errors("REQUEST_LIMIT_EXCEEDED", CONCURRENT)),
        RateLimited,
        "REQUEST_LIMIT_EXCEEDED",
    ),
    (
        "INSUFFICIENT_ACCESS 403",
        status(403, errors("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")),
        PermanentError,
        "INSUFFICIENT_ACCESS_OR_READONLY",
    ),
    (
        "JSON_PARSER_ERROR 400",
        status(400, errors("JSON_PARSER_ERROR", "Cannot deserialize instance of boolean")),
        PermanentError,
        "JSON_PARSER_ERROR",
    ),
    (
        "NOT_FOUND 404",
        status(404, errors("NOT_FOUND", "The requested resource does not exist")),
        PermanentError,
        "NOT_FOUND",
    ),
    ("UNABLE_TO_LOCK_ROW 400", status(400, errors("UNABLE_TO_LOCK_ROW", LOCKED)), TransientError, "UNABLE_TO_LOCK_ROW"),
    ("UNABLE_TO_LOCK_ROW 500", status(500, errors("UNABLE_TO_LOCK_ROW", LOCKED)), TransientError, "UNABLE_TO_LOCK_ROW"),
    (
        "SERVER_UNAVAILABLE 503",
        status(503, errors("SERVER_UNAVAILABLE", "Server temporarily unavailable")),
        TransientError,
        "SERVER_UNAVAILABLE",
    ),
    (
        "UNKNOWN_EXCEPTION 500",
        status(500, errors("UNKNOWN_EXCEPTION", "An unexpected error occurred")),
        OutcomeUnknown,
        "UNKNOWN_EXCEPTION",
    ),
    ("500 HTML page", status(500, HTML_500, "text/html"), OutcomeUnknown, None),
    ("502 from a proxy", status(502, "Bad Gateway", "text/plain"), OutcomeUnknown, None),
    ("200 unreadable body", status(200, "<html>maintenance</html>", "text/html"), OutcomeUnknown, None),
    ("read timeout", time_out, OutcomeUnknown, None),
    ("connection reset", reset, OutcomeUnknown, None),
]
# (id, answer, error class or None when the write succeeds without the refused field, errorCode): one Composite subrequest fails (allOrNone
# rolled everything back, so nothing was written: never OutcomeUnknown)
SUBREQUEST: list[tuple[str, Answer, type[SinkError] | None, str | None]] = [
    (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        subresponse(400, errors("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Calls need a result")),
        PermanentError,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    ),
    (
        "DUPLICATE_VALUE",
        subresponse(
            400,
            errors(
                "DUPLICATE_VALUE",
                "duplicate value found: CallObject duplicates value on record with id: 00T000000000001",
                ["CallObject"],
            ),
        ),
        PermanentError,
        "DUPLICATE_VALUE",
    ),
    (
        "STRING_TOO_LONG",
        subresponse(400, errors("STRING_TOO_LONG", "Subject: data value too large", ["Subject"])),
        PermanentError,
        "STRING_TOO_LONG",
    ),
    (
        "ENTITY_IS_DELETED",
        subresponse(404, errors("ENTITY_IS_DELETED", "entity is deleted")),
        PermanentError,
        "ENTITY_IS_DELETED",
    ),
    (
        "UNABLE_TO_LOCK_ROW",
        subresponse(400, errors("UNABLE_TO_LOCK_ROW", LOCKED)),
        TransientError,
        "UNABLE_TO_LOCK_ROW",
    ),
    (
        "lock in a trigger",
        subresponse(
            400,
            errors(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                f"TaskTrigger: execution of AfterInsert caused by: System.DmlException: Update failed. First exception on row 0; first error: UNABLE_TO_LOCK_ROW, {LOCKED}",
            ),
        ),
        TransientError,
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
    ),
    (
        "INVALID_FIELD on the idempotency field",
        subresponse(400, errors("INVALID_FIELD", "No such column 'CallObject' on sobject of type Task")),
        MissingFields,
        "INVALID_FIELD",
    ),
    (
        "INVALID_FIELD on a plain field",
        subresponse(400, errors("INVALID_FIELD", NO_SUCH_COLUMN)),
        None,
        "INVALID_FIELD",
    ),
    (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        subresponse(
            400,
            errors(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "Unable to create/update fields: Description. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                ["Description"],
            ),
        ),
        None,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
    ),
]


@pytest.fixture
def org(server: tuple[FakeOrg, str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOrg, SalesforceSink]]:
    fake, instance_url, ca_file = server
    monkeypatch.setattr(salesforce_client, "READ_TIMEOUT_S", 0.2)
    fake.script.clear()
    fake.requests.clear()
    sink = open_sink(instance_url, ca_file)
    try:
        yield fake, sink
    finally:
        sink.close()


def write(sink: SalesforceSink) -> list[ActionResult]:
    return sink.execute_many([ACTIVITY], ExecutionContext())


def queries(fake: FakeOrg) -> int:
    return sum("/query" in path for _, path in fake.requests)


@pytest.mark.parametrize(("answer", "kind", "code"), [r[1:] for r in WHOLE_REQUEST], ids=[r[0] for r in WHOLE_REQUEST])
def test_a_failed_request(
    org: tuple[FakeOrg, SalesforceSink], answer: Answer, kind: type[SinkError], code: str | None
) -> None:
    fake, sink = org
    fake.script.append(answer)
    with pytest.raises(SinkError) as caught:
        write(sink)
    assert type(caught.value) is kind and caught.value.code == code
    assert "Talked about" not in str(caught.value)  # values stay out of the log text
    # the next attempt looks the Task up first exactly when the answer may have been lost
    before = queries(fake)
    [result] = write(sink)
    assert queries(fake) - before == (1 if kind is OutcomeUnknown else 0)
    assert result.crm_id == "00T000000000001AAA"


def test_rate_limits_say_how_long_to_wait(org: tuple[FakeOrg, SalesforceSink]) -> None:
    fake, sink = org
    waits = []
    for message in (LIMITS, CONCURRENT):
        fake.script.append(status(403, errors("REQUEST_LIMIT_EXCEEDED", message)))
        with pytest.raises(RateLimited) as caught:
            write(sink)
        waits.append((caught.value.retry_after, caught.value.crm_message))
    assert waits == [(900.0, LIMITS), (30.0, CONCURRENT)]


def test_nothing_listening_is_transient_and_nothing_was_written(server: tuple[FakeOrg, str, str]) -> None:
    """A refused connection never carried the request: retry, but no lookup is needed (not OutcomeUnknown)."""
    _, _, ca_file = server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = open_sink(f"https://127.0.0.1:{port}", ca_file)
    try:
        with pytest.raises(SinkError) as caught:
            write(sink)
    finally:
        sink.close()
    assert type(caught.value) is TransientError


@pytest.mark.parametrize(("answer", "kind", "code"), [r[1:] for r in SUBREQUEST], ids=[r[0] for r in SUBREQUEST])
def test_a_failed_subrequest(
    org: tuple[FakeOrg, SalesforceSink], answer: Answer, kind: type[SinkError] | None, code: str | None
) -> None:
    fake, sink = org
    fake.script.append(answer)
    if kind is None:  # schema drift: the Composite goes again without the field, in the same call
        [result] = write(sink)
        assert result.created and result.detail["skipped_fields"] == {"Description": code}
        return
    with pytest.raises(SinkError) as caught:
        write(sink)
    assert type(caught.value) is kind and caught.value.code == code
    before = queries(fake)
    write(sink)
    assert queries(fake) == before  # rolled back: nothing to look up


WHO_GONE = [  # a create whose WhoId names a contact Salesforce no longer has: the engine resolves the number again
    (
        "INVALID_CROSS_REFERENCE_KEY on WhoId",
        errors("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhoId"]),
        StaleContact,
    ),
    ("ENTITY_IS_DELETED on WhoId", errors("ENTITY_IS_DELETED", "entity is deleted", ["WhoId"]), StaleContact),
    (
        "INVALID_CROSS_REFERENCE_KEY elsewhere",
        errors("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhatId"]),
        PermanentError,
    ),
]


@pytest.mark.parametrize(("body", "kind"), [r[1:] for r in WHO_GONE], ids=[r[0] for r in WHO_GONE])
def test_a_task_for_a_contact_that_is_gone(
    org: tuple[FakeOrg, SalesforceSink], body: list[dict[str, Any]], kind: type[SinkError]
) -> None:
    fake, sink = org
    context = ExecutionContext()
    context.results["2x-7:contact"] = ActionResult(crm_id="003000000000001AAA", object="Contact")
    fake.script.append(subresponse(400, body))
    with pytest.raises(SinkError) as caught:
        sink.execute_many([ACTIVITY.model_copy(update={"associate_with_contact": True})], context)
    assert type(caught.value) is kind and caught.value.code == body[0]["errorCode"]
