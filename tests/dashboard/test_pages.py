"""What the pages show: escaped attacker text, search and filters, the audit trail, sink health, preview."""

from __future__ import annotations

import html
import json

import pytest

from connector.ledger import Ledger, RejectedBody
from connector.ledger._clock import utcnow
from tests.support.dashboard import Dash, basic, csrf_token, dashboard_app
from tests.support.delivery import engine_settings, ingest
from tests.support.ledger import truncate_all
from tests.support.recorder import Recorder

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def test_attacker_text_in_a_transcript_renders_inert(dash: Dash) -> None:
    ingest(
        dash.ledger,
        41,
        record_first_name=IMG,
        transcript=[{"role": "User", "content": SCRIPT}, {"role": SCRIPT, "content": "hi"}],
        question_fields={SCRIPT: IMG},
        meta={"campaign": SCRIPT},
    )
    page = text(dash.get("/events/41"))
    assert SCRIPT not in page and IMG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert html.escape(IMG) in page or "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page
    assert "<script" not in page.replace('<script src="/dashboard/static/dashboard.js" defer></script>', "")


def test_attacker_text_in_a_quarantined_body_and_in_search_renders_inert(dash: Dash) -> None:
    body = json.dumps({"id": SCRIPT, "call": SCRIPT}).encode()
    qid = dash.ledger.quarantine(
        RejectedBody(
            body,
            "application/json",
            422,
            "validation_failed",
            SCRIPT,
            [{"path": SCRIPT, "message": IMG}],
            event_id=SCRIPT,
        )
    )
    for page in (
        text(dash.get("/quarantine")),
        text(dash.get(f"/quarantine/{qid}")),
        text(dash.get("/events", query_string={"q": SCRIPT})),
        text(dash.get("/events/" + SCRIPT)),
    ):
        assert SCRIPT not in page and IMG not in page


def test_events_newest_first_with_search_by_id_phone_and_outcome(dash: Dash) -> None:
    ingest(dash.ledger, 1001, end_reason="no_answer", record_phone_number="+14155550100")
    ingest(dash.ledger, 1002, end_reason="do_not_call", record_phone_number="+12125550188")
    ingest(dash.ledger, 2001, end_reason="schedule_call_back", record_phone_number="+13125550199")
    listing = text(dash.get("/events"))
    assert listing.index("<code>2001</code>") < listing.index("<code>1002</code>") < listing.index("<code>1001</code>")

    def found(q: str) -> set[str]:
        page = text(dash.get("/events", query_string={"q": q}))
        return {i for i in ("1001", "1002", "2001") if f"<code>{i}</code>" in page}

    assert found("1002") == {"1002"}
    assert found("100") == {"1001", "1002"}  # an id prefix
    assert found("(415) 555-0100") == {"1001"}  # phone digits, however typed
    assert found("555-0188") == {"1002"}
    assert found("do not call") == {"1002"}
    assert found("call_back") == {"2001"}
    assert found("nothing-like-this") == set()
    assert "No event matches" in text(dash.get("/events", query_string={"q": "zzz"}))


def test_events_filter_by_delivery_status_and_sink(dash: Dash) -> None:
    ingest(dash.ledger, 1, record_phone_number="+14155550101")
    ingest(dash.ledger, 2, record_phone_number="+14155550102")
    dash.break_mapping()
    dash.deliver()
    ingest(dash.ledger, 3, record_phone_number="+14155550103")
    dead = text(dash.get("/events", query_string={"status": "dead"}))
    pending = text(dash.get("/events", query_string={"status": "pending", "sink": "rec"}))
    assert "<code>1</code>" in dead and "<code>2</code>" in dead and "<code>3</code>" not in dead
    assert "<code>3</code>" in pending and "<code>1</code>" not in pending
    unknown_sink = text(dash.get("/events", query_string={"status": "pending", "sink": "unknown-sink"}))
    assert "<code>3</code>" in unknown_sink  # an unknown sink name is ignored, not an error
    assert "2 events match" in dead


def test_events_are_paginated(dash: Dash) -> None:
    for i in range(53):
        ingest(dash.ledger, 5000 + i, record_phone_number=f"+1415555{1000 + i}")
    first, second = text(dash.get("/events")), text(dash.get("/events", query_string={"page": 2}))
    assert "page 1 of 2" in first and "<code>5052</code>" in first and "<code>5002</code>" not in first
    assert "<code>5002</code>" in second and "<code>5000</code>" in second and "<code>5052</code>" not in second
    assert "older →" in first and "← newer" in second
    assert text(dash.get("/events", query_string={"page": "x"})).count("page 1 of 2") == 1


def test_the_event_page_shows_the_whole_audit_trail(dash: Dash) -> None:
    ingest(
        dash.ledger,
        77,
        end_reason="schedule_call_back",
        question_fields={"callback_time": "tomorrow 3pm"},
        transcript=[{"role": "User", "content": "Call me later"}],
    )
    dash.deliver()
    page = text(dash.get("/events/77"))
    assert "schedule call back" in page and "Call me later" in page
    assert "succeeded" in page and "2x-77:activity" in page and "2x-77:task:callback" in page
    assert "Log the call as" in page  # the plan, as text
    crm_ids = dash.ledger.deliveries.journal(dash.ledger.deliveries_for("77")[0]["id"])
    assert all(e.crm_id and e.crm_id in page for e in crm_ids.values())
    assert "Raw body as received" in page and "&#34;end_reason&#34;: &#34;schedule_call_back&#34;" in page
    assert dash.get("/events/404404").status_code == 404


def test_the_event_page_explains_a_dead_letter_in_plain_words(dash: Dash) -> None:
    ingest(dash.ledger, 78)
    dash.break_mapping()
    dash.deliver()
    page = text(dash.get("/events/78"))
    assert "The CRM refused the data as invalid" in page
    assert "Property reject_me does not exist" in page  # the raw message stays visible


def test_the_overview_shows_paused_and_blocked_sinks_backlog_and_workers(dash: Dash) -> None:
    ingest(dash.ledger, 1, record_phone_number="+14155550101")
    ingest(dash.ledger, 2, record_phone_number="+14155550102")
    dash.ledger.sinks.pause("rec", "credentials rejected: invalid token", probe_in_s=30)
    page = text(dash.get("/"))
    assert "paused" in page and "The CRM rejected the credentials; the sink is paused until they work again" in page
    assert "credentials rejected: invalid token" in page
    assert "2 due or in flight" in page and "waiting" in page
    assert "No live delivery worker" in page
    dash.ledger.sinks.resume("rec")
    from datetime import timedelta

    dash.ledger.sinks.block_until("rec", utcnow() + timedelta(minutes=5))
    dash.ledger.sinks.heartbeat("host:1:abc")
    page = text(dash.get("/"))
    assert "blocked" in page and "Rate-limited by the CRM" in page and "host:1:abc" in page


def test_the_overview_warns_about_fields_the_crm_lacks(dash: Dash) -> None:
    page = text(dash.get("/"))
    assert "Fields are being skipped" not in page
    dash.ledger.sinks.note_missing("rec", {("contacts", "twox_last_call_outcome"): "PROPERTY_DOESNT_EXIST"}, "7")
    page = text(dash.get("/"))
    assert "Fields are being skipped: the CRM lacks fields contacts.twox_last_call_outcome" in page
    assert "connector crm-setup --config FILE --sink rec" in page
    assert "missing fields" in page and "paused" not in page  # a warning, not a pause
    dash.ledger.sinks.clear_missing("rec", [("Contacts", "twox_last_call_outcome")])
    assert "Fields are being skipped" not in text(dash.get("/"))


def test_preview_shows_the_plan_and_stores_nothing(dash: Dash) -> None:
    form = text(dash.get("/preview"))
    token = csrf_token(form)
    assert "schedule_call_back" in form  # a sample payload to start from
    body = json.dumps(
        {
            "id": 9,
            "call": {"end_reason": "do_not_call"},
            "record_phone_number": "+14155550100",
            "transcript": [{"role": "User", "content": SCRIPT}],
        }
    )
    answer = dash.client.post(
        "/dashboard/preview",
        data={"body": body, "csrf_token": token, "call_time": "2026-11-26T15:04:00-05:00"},
        headers=basic(),
    )
    page = text(answer)
    assert answer.status_code == 200 and "Do-not-call: YES" in page and "Event 9 -&gt; rec" in page
    assert SCRIPT not in page
    assert dash.ledger.count_events() == 0 and dash.recorder.writes == []


def test_preview_shows_why_a_payload_has_no_plan(dash: Dash) -> None:
    token = csrf_token(text(dash.get("/preview")))
    for body, expected in [("{not json", "invalid_json"), ('{"id": 1, "call": {"duration": -5}}', "call.duration")]:
        page = text(dash.client.post("/dashboard/preview", data={"body": body, "csrf_token": token}, headers=basic()))
        assert "No plan." in page and expected in page
    bad_time = text(
        dash.client.post(
            "/dashboard/preview", data={"body": "{}", "csrf_token": token, "call_time": "yesterday"}, headers=basic()
        )
    )
    assert "not an ISO date-time" in bad_time


def test_a_store_outage_is_a_503_page_not_a_crash(dash: Dash, monkeypatch: object) -> None:
    from connector.dashboard import queries
    from connector.errors import StoreError

    def down(*_args: object, **_kwargs: object) -> int:
        raise StoreError("store unreachable: OperationalError")

    monkeypatch.setattr(queries, "count_events", down)  # type: ignore[attr-defined]
    answer = dash.get("/")
    assert answer.status_code == 503 and "Store unavailable" in text(answer)
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/events?q=%00",
        "/events?q=%2B1202%00",
        "/events?status=dead&sink=%00",
        "/events/bp%00x",
        "/dead?sink=%00",
        "/quarantine?page=1&q=x%00",
    ],
)
def test_a_nul_in_the_address_is_a_400_on_every_backend(store_url: str, recorder: Recorder, path: str) -> None:
    """PostgreSQL text cannot hold a NUL: a search for one was a 500 there (and an event page a false
    "store unavailable") where SQLite said "no match". Now both say what is wrong, and nothing else changes."""
    settings = engine_settings(store_url, recorder.url)
    ledger = Ledger.open(settings.store)
    try:
        truncate_all(ledger)
        client = dashboard_app(settings, ledger).test_client()
        answer = client.get("/dashboard" + path, headers=basic())
        assert answer.status_code == 400
        assert "NUL character" in answer.get_data(as_text=True)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get("/dashboard/events?q=%2B1202", headers=basic()).status_code == 200
    finally:
        ledger.dispose()


def test_a_nul_in_a_posted_field_is_a_400_and_replays_nothing(dash: Dash) -> None:
    ingest(dash.ledger, 4_100)
    token = csrf_token(dash.get("/events/4100").get_data(as_text=True))
    answer = dash.client.post(
        "/dashboard/events/replay", data={"event_id": "4100\x00", "csrf_token": token}, headers=basic()
    )
    assert answer.status_code == 400 and "NUL character" in answer.get_data(as_text=True)
    assert dash.ledger.deliveries_for("4100")[0]["status"] == "pending"
