"""The webhook endpoint over real HTTP: exact status codes for good and hostile bodies, on both backends."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from connector._normalize import MAX_DEPTH, nested_too_deep
from connector.errors import PayloadError
from connector.payload import EndReason, FailureReason
from connector.receiver.ingest import decode_json
from connector.sample import VENDOR_SAMPLE_VERBATIM, sample_payload
from tests.support.serving import Served

JSON = "application/json"


def post(
    served: Served,
    body: bytes | str,
    content_type: str | None = JSON,
    token: str | None = "<ok>",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {**(headers or {})}
    if content_type is not None:
        sent["Content-Type"] = content_type
    if token is not None:
        sent["Authorization"] = served.token if token == "<ok>" else token
    data = body.encode() if isinstance(body, str) else body
    return requests.post(served.url, data=data, headers=sent, timeout=10)


def quarantined(served: Served) -> list[dict[str, Any]]:
    return served.ledger.list_quarantine(include_replayed=True)


def nested(depth: int) -> str:
    return '{"id": 1, "call": {}, "meta": {"x": ' + "[" * depth + "]" * depth + "}}"


def test_vendor_sample_made_valid_is_accepted_and_stored_once(served: Served) -> None:
    document = sample_payload(123)
    document["call"]["end_reason"] = "transferred"
    answer = post(served, json.dumps(document))
    assert answer.status_code == 202
    assert answer.json() == {"id": "123", "status": "accepted"}
    stored = served.ledger.get_event("123")
    assert stored is not None and json.loads(stored["body"]) == document
    assert json.loads(stored["normalized"])["call"]["end_reason"]["value"] == "call_transferred"

    again = post(served, json.dumps(document))
    assert (again.status_code, again.json()) == (200, {"id": "123", "status": "duplicate"})
    assert served.ledger.count_events() == 1


def test_same_id_with_another_body_is_409_and_kept(served: Served) -> None:
    assert post(served, json.dumps(sample_payload(5, end_reason="hung_up"))).status_code == 202
    answer = post(served, json.dumps(sample_payload(5, end_reason="do_not_call")))
    assert answer.status_code == 409
    assert answer.json()["error"] == "id_conflict"
    kept = quarantined(served)
    assert [(q["code"], q["event_id"]) for q in kept] == [("id_conflict", "5")]


@pytest.mark.parametrize("end_reason", [r.value for r in EndReason])
def test_every_documented_end_reason_is_accepted(served: Served, end_reason: str) -> None:
    answer = post(served, json.dumps(sample_payload(1000, end_reason=end_reason)))
    assert answer.status_code == 202
    assert served.ledger.get_event("1000")["end_reason"] == end_reason


@pytest.mark.parametrize("failure_reason", [r.value for r in FailureReason])
def test_every_documented_failure_reason_is_accepted(served: Served, failure_reason: str) -> None:
    document = sample_payload(2000, end_reason="no_answer")
    document["call"].update(failure_reason=failure_reason, answered=False, duration=0)
    assert post(served, json.dumps(document)).status_code == 202
    normalized = json.loads(served.ledger.get_event("2000")["normalized"])
    assert normalized["call"]["failure_reason"] == {"value": failure_reason, "raw": failure_reason, "known": True}


def test_unknown_end_reason_is_kept_verbatim_not_rejected(served: Served) -> None:
    assert post(served, json.dumps(sample_payload(3, end_reason="Line_Busy"))).status_code == 202
    normalized = json.loads(served.ledger.get_event("3")["normalized"])
    assert normalized["call"]["end_reason"] == {"value": "Line_Busy", "raw": "Line_Busy", "known": False}
    assert "end_reason_unknown" in normalized["flags"]


def test_a_raw_control_character_is_named_with_its_position(served: Served) -> None:
    answer = post(served, '{"id": "c1", "call": {}, "record_first_name": "A\x00B"}')
    assert answer.status_code == 400
    assert answer.json()["detail"] == "the body is not valid JSON: Invalid control character at line 1, column 49"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"id": ' + "7" * 5000 + ', "call": {}}', "an integer has more than 4,300 digits"),
        ('{"id": "n1", "call": {"duration": NaN}}', "NaN is not a JSON number (RFC 8259 §6)"),
    ],
)
def test_a_number_python_cannot_read_says_why(served: Served, body: str, reason: str) -> None:
    """A 5,000-digit id was 'unreadable number or constant': now the reason names the limit, and the body is kept."""
    answer = post(served, body)
    assert answer.status_code == 400 and answer.json()["detail"] == f"the body is not valid JSON: {reason}"
    assert served.ledger.get_quarantined(answer.json()["quarantine_id"])["body"] == body.encode()


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_a_compressed_body_is_refused_with_415_and_kept(served: Served, encoding: str) -> None:
    """A gzip body was answered "not UTF-8 encoded JSON" (400), and a plain one labelled gzip was accepted."""
    import gzip

    body = json.dumps(sample_payload(3_300)).encode()
    for sent in (gzip.compress(body), body):
        answer = requests.post(
            served.url,
            data=sent,
            headers={"Authorization": served.token, "Content-Type": "application/json", "Content-Encoding": encoding},
            timeout=5,
        )
        assert answer.status_code == 415
        assert answer.json()["error"] == "unsupported_content_encoding"
        assert encoding in answer.json()["detail"]
        assert served.ledger.get_quarantined(answer.json()["quarantine_id"])["body"] == sent
    assert served.ledger.get_event("3300") is None


HOSTILE: list[tuple[str, bytes, str | None, int, str]] = [
    ("vendor sample verbatim", VENDOR_SAMPLE_VERBATIM.encode(), JSON, 400, "invalid_json"),
    ("invalid json", b'{"id": 1, "call": {', JSON, 400, "invalid_json"),
    ("empty body", b"", JSON, 400, "empty_body"),
    ("whitespace body", b"  \n ", JSON, 400, "empty_body"),
    ("array", b"[1, 2]", JSON, 400, "not_an_object"),
    ("null", b"null", JSON, 400, "not_an_object"),
    ("string", b'"hello"', JSON, 400, "not_an_object"),
    ("number", b"42", JSON, 400, "not_an_object"),
    ("empty object", b"{}", JSON, 400, "not_a_call_record"),
    ("NaN", b'{"id": 1, "call": {"duration": NaN}}', JSON, 400, "invalid_json"),
    ("deeply nested", nested(200).encode(), JSON, 400, "too_deeply_nested"),
    ("very deeply nested", ("[" * 30_000 + "]" * 30_000).encode(), JSON, 400, "too_deeply_nested"),
    ("utf-16 with bom", '{"id": 1, "call": {}}'.encode("utf-16"), JSON, 400, "invalid_encoding"),
    (
        "utf-16 declared",
        '{"id": 1, "call": {}}'.encode("utf-16"),
        JSON + "; charset=utf-16",
        415,
        "unsupported_media_type",
    ),
    (
        "latin-1 bytes",
        '{"id": 1, "call": {}, "record_first_name": "Jos\u00e9"}'.encode("latin-1"),
        JSON,
        400,
        "invalid_encoding",
    ),
    ("form encoded", b"id=1&call=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("text/plain json", b'{"id": 1, "call": {}}', "text/plain", 415, "unsupported_media_type"),
    ("no content type", b'{"id": 1, "call": {}}', None, 415, "unsupported_media_type"),
    ("multipart", b"--x\r\n\r\n", "multipart/form-data; boundary=x", 415, "unsupported_media_type"),
    ("missing id", b'{"call": {"end_reason": "hung_up"}}', JSON, 422, "validation_failed"),
    ("call not an object", b'{"id": 1, "call": "hung_up"}', JSON, 422, "validation_failed"),
    ("negative duration", b'{"id": 1, "call": {"duration": -5}}', JSON, 422, "validation_failed"),
    ("duration not a number", b'{"id": 1, "call": {"duration": "long"}}', JSON, 422, "validation_failed"),
    ("answered not boolean", b'{"id": 1, "call": {"answered": "maybe"}}', JSON, 422, "validation_failed"),
    ("id is a bool", b'{"id": true, "call": {}}', JSON, 422, "validation_failed"),
    ("transcript a string", b'{"id": 1, "call": {}, "transcript": "hello"}', JSON, 422, "validation_failed"),
    ("meta a list", b'{"id": 1, "call": {}, "meta": [1]}', JSON, 422, "validation_failed"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_bodies_get_exact_codes_and_are_quarantined(
    served: Served, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    answer = post(served, body, content_type)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == code
    assert served.ledger.count_events() == 0
    kept = quarantined(served)
    assert len(kept) == 1
    assert (kept[0]["http_status"], kept[0]["code"]) == (status, code)
    assert served.ledger.get_quarantined(kept[0]["id"])["body"] == body


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (b'{"call": {}}', ["id"]),
        (b'{"id": 1, "call": "x"}', ["call"]),
        (b'{"id": 1, "call": {"duration": -1, "answered": "maybe"}}', ["call.answered", "call.duration"]),
        (b'{"id": 1, "call": {}, "transcript": [{"role": "user", "content": "hi"}, 7]}', ["transcript[1]"]),
    ],
)
def test_validation_errors_name_every_field_path(served: Served, body: bytes, paths: list[str]) -> None:
    answer = post(served, body)
    assert answer.status_code == 422
    assert sorted(e["path"] for e in answer.json()["errors"]) == paths


def test_body_over_the_limit_is_413_and_its_beginning_is_kept(served: Served) -> None:
    limit = served.settings.receiver.max_body_bytes
    document = sample_payload(9)
    document["meta"] = {"padding": "x" * (limit + 10)}
    body = json.dumps(document).encode()
    answer = post(served, body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"
    kept = quarantined(served)[0]
    assert kept["body_truncated"] is True
    assert served.ledger.get_quarantined(kept["id"])["body"] == body[:limit]
    assert served.ledger.count_events() == 0


def test_chunked_body_over_the_limit_is_413(served: Served) -> None:
    limit = served.settings.receiver.max_body_bytes

    def chunks():
        yield b'{"id": 1, "call": {}, "meta": {"p": "'
        for _ in range(limit // 1000 + 5):
            yield b"y" * 1000
        yield b'"}}'

    answer = requests.post(
        served.url, data=chunks(), timeout=10, headers={"Content-Type": JSON, "Authorization": served.token}
    )
    assert answer.status_code == 413
    assert served.ledger.count_events() == 0


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong", "Bearer <ok>", "<ok> ", "<ok>x", "<OK>"],
    ids=["missing", "empty", "wrong", "prefixed", "trailing space", "longer", "case changed"],
)
def test_wrong_or_missing_token_is_401_and_stores_nothing(served: Served, token: str | None) -> None:
    if token is not None:
        token = token.replace("<ok>", served.token).replace("<OK>", served.token.upper())
    answer = post(served, json.dumps(sample_payload(1)), token=token)
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized", "detail": "missing or invalid credentials"}
    assert served.ledger.count_events() == 0
    assert quarantined(served) == []


def test_token_in_another_header_is_refused(served: Served) -> None:
    answer = post(served, json.dumps(sample_payload(1)), token=None, headers={"X-Token": served.token})
    assert answer.status_code == 401


def test_charset_parameter_utf8_is_accepted(served: Served) -> None:
    assert post(served, json.dumps(sample_payload(77)), JSON + "; charset=UTF-8").status_code == 202


def test_utf8_bom_is_tolerated(served: Served) -> None:
    assert post(served, b"\xef\xbb\xbf" + json.dumps(sample_payload(78)).encode()).status_code == 202


def test_other_methods_and_paths_answer_json(served: Served) -> None:
    wrong_method = requests.get(served.url, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
    missing = requests.post(served.base_url + "/nope", data=b"{}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_webhook_answer_is_json_as_before_and_other_requests_still_reach_flask(served_sqlite: Served) -> None:
    """The webhook's POST is answered in front of Flask (webhook.WebhookRoute): same JSON answer as Flask's
    jsonify, and what is not that POST (a trailing slash, HEAD) still gets Flask's routing answers."""
    answer = post(served_sqlite, json.dumps(sample_payload(4242)))
    assert answer.status_code == 202
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.content == b'{"id":"4242","status":"accepted"}\n'
    assert answer.headers["Content-Length"] == str(len(answer.content))
    slash = requests.post(served_sqlite.url + "/", data=b"{}", allow_redirects=False, timeout=10)
    assert slash.status_code in (404, 405, 308) and "error" in slash.json()
    assert requests.head(served_sqlite.url, timeout=10).status_code == 405


def test_an_unexpected_failure_is_a_json_500_logged_and_nothing_acknowledged(
    served_sqlite: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug below the receiver (not a store outage, not a bad body) answers 500, so 2X retries, with the
    JSON error body Flask's handler gives every other route; the traceback goes to the log."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(served_sqlite.ledger, "record_event", broken)
    with caplog.at_level("ERROR", logger="connector"):
        answer = post(served_sqlite, json.dumps(sample_payload(4343)))
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error", "detail": "the request failed; nothing was acknowledged"}
    assert any("unhandled error: RuntimeError" in r.getMessage() and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    assert served_sqlite.ledger.get_event("4343") is None
    assert post(served_sqlite, json.dumps(sample_payload(4343))).status_code == 202  # 2X's retry is accepted


def test_health_and_readiness(served: Served) -> None:
    assert requests.get(served.base_url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(served.base_url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"


def test_two_tokens_are_accepted_while_rotating(tmp_path) -> None:
    from connector.app import create_app
    from connector.ledger import Ledger
    from tests.support.settings import make_settings

    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}")
    rotated = settings.model_copy(
        update={
            "receiver": settings.receiver.model_copy(
                update={
                    "auth": settings.receiver.auth.model_copy(
                        update={
                            "tokens": [
                                *settings.receiver.auth.tokens,
                                type(settings.receiver.auth.tokens[0])("next-token-" + "y" * 20),
                            ]
                        }
                    )
                }
            )
        }
    )
    client = create_app(rotated, ledger=Ledger.open(rotated.store)).test_client()
    for number, token in enumerate([settings.receiver.auth.tokens[0].get_secret_value(), "next-token-" + "y" * 20]):
        answer = client.post(
            rotated.receiver.path,
            data=json.dumps(sample_payload(900 + number)),
            headers={"Authorization": token, "Content-Type": JSON},
        )
        assert answer.status_code == 202
    assert (
        client.post(
            rotated.receiver.path, data=b"{}", headers={"Authorization": "old-token", "Content-Type": JSON}
        ).status_code
        == 401
    )


def test_an_allow_list_refuses_other_sources_before_auth(tmp_path) -> None:
    from connector.app import create_app
    from connector.ledger import Ledger
    from tests.support.settings import TOKEN, make_settings

    def client(allowed: list[str], hops: int = 0):
        settings = make_settings(f"sqlite:///{tmp_path / 'a.db'}")
        receiver = settings.receiver.model_copy(update={"allowed_sources": allowed, "proxy_hops": hops})
        settings = settings.model_copy(update={"receiver": receiver})
        return create_app(settings, ledger=Ledger.open(settings.store)).test_client(), settings.receiver.path

    body, headers = json.dumps(sample_payload(1)), {"Authorization": TOKEN, "Content-Type": JSON}
    refused, path = client(["203.0.113.0/24"])
    answer = refused.post(path, data=body, headers=headers, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert answer.status_code == 403 and answer.get_json()["error"] == "forbidden"
    assert (
        refused.post(path, data=body, headers=headers, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 202
    )
    behind_proxy, path = client(["203.0.113.0/24"], hops=1)
    answer = behind_proxy.post(
        path,
        data=json.dumps(sample_payload(2)),
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={**headers, "X-Forwarded-For": "203.0.113.10"},
    )
    assert answer.status_code == 202


def test_allowed_sources_must_be_networks() -> None:
    from pathlib import Path

    from connector.config import parse_settings
    from connector.errors import ConfigError

    with pytest.raises(ConfigError, match="is not an IP network"):
        parse_settings(
            {"receiver": {"auth": {"tokens": ["t"]}, "allowed_sources": ["example.com"]}},
            source="t",
            base_dir=Path("."),
            environ={},
        )


def test_the_one_depth_limit_is_read_from_the_text_before_parsing() -> None:
    """decode_json and check_json share MAX_DEPTH; brackets inside strings do not count."""
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert decode_json(at_limit.encode()) is not None
    assert not nested_too_deep(at_limit)
    assert nested_too_deep("[" + at_limit + "]")
    with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH} levels") as refused:
        decode_json(("[" + at_limit + "]").encode())
    assert (refused.value.status, refused.value.code) == (400, "too_deeply_nested")
    in_strings = json.dumps({"note": "[{" * 500, "escaped": '\\"[[[' * 100})
    assert not nested_too_deep(in_strings)
    assert decode_json(in_strings.encode()) == json.loads(in_strings)


def _depth_by_walking(text: str) -> int:
    """The deepest nesting of a JSON text, read character by character (what nested_too_deep once did)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


_tricky_text = st.text(st.sampled_from(list('[]{}"\\ ab\n\u00e9\U0001f600')), max_size=12)
_json_trees = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400)
@given(_json_trees, st.integers(min_value=MAX_DEPTH - 8, max_value=MAX_DEPTH + 2), st.booleans(), st.booleans())
def test_depth_check_agrees_with_a_character_walk(tree: Any, wrap: int, ascii_only: bool, indent: bool) -> None:
    # nested_too_deep cuts strings out with str methods instead of walking characters: same answer on any JSON,
    # wrapped to land on both sides of the limit, with quotes, backslashes and brackets inside its strings
    for document in (tree, [{"k": tree}] * 2, _wrapped(tree, wrap)):
        text = json.dumps(document, ensure_ascii=ascii_only, indent=1 if indent else None)
        assert nested_too_deep(text) == (_depth_by_walking(text) > MAX_DEPTH), text


def _wrapped(tree: Any, levels: int) -> Any:
    for level in range(levels):
        tree = [tree, ']}\\"'] if level % 2 else {"[\\": tree}
    return tree
