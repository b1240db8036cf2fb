"""No bad input ever yields a 5xx: arbitrary bytes and arbitrary JSON through the real app.

Only a store that is down may answer 5xx (503, so 2X retries), and then nothing is acknowledged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from connector.app import create_app
from connector.ledger import Ledger
from connector.sample import sample_payload
from tests.support.settings import TOKEN, make_settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
keys = st.sampled_from(
    [
        "id",
        "call",
        "end_reason",
        "duration",
        "answered",
        "transcript",
        "meta",
        "message_left",
        "record_phone_number",
        "record_timezone",
        "workflow_end",
        "workflow_day",
        "role",
        "content",
    ]
)
payload_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    store = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    app = create_app(make_settings(store), ledger=Ledger.open(make_settings(store).store))
    return app.test_client()


def _post(client, body: bytes, content_type: str = "application/json"):
    return client.post(
        "/webhooks/2x/post-call", data=body, headers={"Authorization": TOKEN, "Content-Type": content_type}
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_never_5xx(client, body: bytes) -> None:
    assert _post(client, body).status_code in (202, 200, 409, 400, 422)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values | payload_like)
def test_arbitrary_json_never_5xx(client, document: object) -> None:
    answer = _post(client, json.dumps(document).encode())
    assert answer.status_code in (202, 200, 409, 400, 422)
    assert "error" in answer.get_json() or answer.get_json()["status"] in ("accepted", "duplicate")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=st.dictionaries(keys, payload_like, max_size=5), extra=st.dictionaries(keys, payload_like, max_size=5))
def test_call_records_with_odd_fields_never_5xx(client, call: dict, extra: dict) -> None:
    document = {**extra, "id": 1, "call": call}
    assert _post(client, json.dumps(document).encode()).status_code in (202, 200, 409, 422)


def test_store_down_is_503_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    settings_ = make_settings("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    unreachable = Ledger(create_engine(settings_.store.url, pool_pre_ping=False))
    client = create_app(settings_, ledger=unreachable).test_client()
    answer = _post(client, json.dumps(sample_payload(1)).encode())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.get_json()["error"] == "store_unavailable"
    # Even a bad body cannot be quarantined while the store is down: 503, so the sender retries.
    assert _post(client, b"[1]").status_code == 503
    assert client.get("/readyz").status_code == 503
