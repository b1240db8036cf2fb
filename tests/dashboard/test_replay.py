"""The replay buttons: dead letters and quarantined bodies, one, ticked or all, change the real ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from connector.ledger import DeliveryStatus, RejectedBody
from connector.ledger._clock import utcnow
from connector.ledger.retention import cutoff
from connector.ledger.schema import events
from connector.sample import sample_payload
from tests.support.dashboard import Dash, basic, csrf_token
from tests.support.delivery import ingest, statuses
from tests.support.settings import TOKEN


def post(dash: Dash, path: str, page: str, **form: Any) -> Any:
    token = csrf_token(dash.get(page).get_data(as_text=True))
    return dash.client.post("/dashboard" + path, data={**form, "csrf_token": token}, headers=basic())


def dead_letters(dash: Dash, *ids: int) -> list[str]:
    for i in ids:
        ingest(dash.ledger, i, record_phone_number=f"+1415555{1000 + i:04d}")
    dash.break_mapping()
    dash.deliver()
    events = [str(i) for i in ids]
    assert all(statuses(dash.ledger, e) == ["dead"] for e in events)
    return events


def delivery_id(dash: Dash, event_id: str) -> int:
    return int(dash.ledger.deliveries_for(event_id)[0]["id"])


def test_the_dead_letter_page_lists_each_with_its_reason(dash: Dash) -> None:
    dead_letters(dash, 1, 2)
    page = dash.get("/dead").get_data(as_text=True)
    assert page.count('name="one"') == 2 and "The CRM refused the data as invalid" in page
    assert "Property reject_me does not exist" in page and "Replay all 2" in page


def test_replaying_one_dead_letter_requeues_only_it_and_it_then_succeeds(dash: Dash) -> None:
    first, second = dead_letters(dash, 1, 2)
    answer = post(dash, "/dead/replay", "/dead", one=str(delivery_id(dash, first)))
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/dashboard/dead?requeued=1")
    assert statuses(dash.ledger, first) == ["pending"] and statuses(dash.ledger, second) == ["dead"]
    assert "1 delivery requeued" in dash.get("/dead?requeued=1").get_data(as_text=True)
    dash.fix_mapping()
    dash.deliver()
    assert statuses(dash.ledger, first) == ["succeeded"] and statuses(dash.ledger, second) == ["dead"]
    assert dash.recorder.duplicates() == {}


def test_replaying_the_ticked_dead_letters(dash: Dash) -> None:
    a, b, c = dead_letters(dash, 1, 2, 3)
    answer = post(
        dash,
        "/dead/replay",
        "/dead",
        action="selected",
        selected=[str(delivery_id(dash, a)), str(delivery_id(dash, c))],
    )
    assert answer.headers["Location"].endswith("requeued=2")
    assert [statuses(dash.ledger, e)[0] for e in (a, b, c)] == ["pending", "dead", "pending"]


def test_replaying_all_dead_letters(dash: Dash) -> None:
    events = dead_letters(dash, 1, 2, 3)
    answer = post(dash, "/dead/replay", "/dead", action="all")
    assert answer.headers["Location"].endswith("requeued=3")
    assert all(statuses(dash.ledger, e) == ["pending"] for e in events)
    assert "Nothing here" in dash.get("/dead").get_data(as_text=True)


def test_replay_ignores_deliveries_that_are_not_dead(dash: Dash) -> None:
    ingest(dash.ledger, 5)
    dash.deliver()
    answer = post(dash, "/dead/replay", "/preview", one=str(delivery_id(dash, "5")))
    assert answer.headers["Location"].endswith("requeued=0")
    assert statuses(dash.ledger, "5") == ["succeeded"]
    garbage = post(dash, "/dead/replay", "/preview", action="selected", selected=["x", "-1", "99999"])
    assert garbage.headers["Location"].endswith("requeued=0")


def test_held_deliveries_are_listed_and_released(dash: Dash) -> None:
    ingest(dash.ledger, 6)
    delivery = delivery_id(dash, "6")
    claimed = dash.ledger.deliveries.claim("w", ["rec"], limit=1, lease_s=30)
    attempt = dash.ledger.deliveries.start_attempt(delivery, 1, "w")
    dash.ledger.deliveries.finish(
        claimed[0].id,
        attempt,
        "w",
        status=DeliveryStatus.HELD,
        outcome="held",
        error={"kind": "hold", "message": "several contacts share this number"},
    )
    page = dash.get("/dead?status=held").get_data(as_text=True)
    assert "holds this call for a human review" in page and "several contacts share this number" in page
    answer = post(dash, "/dead/replay", "/dead?status=held", status="held", action="all")
    assert answer.headers["Location"].endswith("status=held&requeued=1")
    assert statuses(dash.ledger, "6") == ["pending"]


def test_the_event_page_replay_button(dash: Dash) -> None:
    (event,) = dead_letters(dash, 8)
    answer = post(dash, "/events/replay", f"/events/{event}", event_id=event)
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/dashboard/event?id={event}&requeued=1")
    assert statuses(dash.ledger, event) == ["pending"]
    assert "Replayed: 1 delivery requeued" in dash.get(f"/events/{event}?requeued=1").get_data(as_text=True)
    unknown = post(dash, "/events/replay", "/preview", event_id="no-such-event")
    assert unknown.status_code == 303 and "/dashboard/events?q=no-such-event" in unknown.headers["Location"]


def _quarantine_valid_body(dash: Dash, event_id: int) -> int:
    """A body that today's code accepts (as if an older version had refused it)."""
    body = json.dumps(sample_payload(event_id)).encode()
    return dash.ledger.quarantine(
        RejectedBody(
            body,
            "application/json",
            422,
            "validation_failed",
            "1 field problem(s)",
            [{"path": "call", "message": "old rule"}],
        )
    )


def _quarantine_by_receiver(dash: Dash, body: bytes) -> None:
    answer = dash.client.post(
        dash.settings.receiver.path, data=body, headers={"Authorization": TOKEN, "Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 422)


def test_the_quarantine_page_explains_each_body(dash: Dash) -> None:
    _quarantine_by_receiver(dash, b'{"id": 1, "call": {')
    _quarantine_by_receiver(dash, json.dumps({"id": 2, "call": {"duration": -5}}).encode())
    page = dash.get("/quarantine").get_data(as_text=True)
    assert "The body is not valid JSON" in page and "Some fields have the wrong type" in page
    assert "call.duration" in page and "must not be negative" in page


def test_replaying_one_quarantined_body_makes_it_an_event(dash: Dash) -> None:
    qid = _quarantine_valid_body(dash, 4242)
    _quarantine_by_receiver(dash, b"not json")
    answer = post(dash, "/quarantine/replay", "/quarantine", one=str(qid))
    assert answer.headers["Location"].endswith("/dashboard/quarantine?replayed=1&accepted=1")
    assert dash.ledger.get_event("4242") is not None and statuses(dash.ledger, "4242") == ["pending"]
    row = dash.ledger.get_quarantined(qid)
    assert row is not None and row["replayed_at"] is not None and "accepted as event 4242" in row["replay_result"]
    assert len(dash.ledger.list_quarantine()) == 1  # the other body still awaits a look
    assert "1 accepted as new events" in dash.get("/quarantine?replayed=1&accepted=1").get_data(as_text=True)


def test_replaying_a_still_invalid_body_says_why_and_keeps_it(dash: Dash) -> None:
    _quarantine_by_receiver(dash, b"not json")
    (row,) = dash.ledger.list_quarantine()
    answer = post(dash, "/quarantine/replay", f"/quarantine/{row['id']}", one=str(row["id"]), back="item")
    assert answer.headers["Location"].endswith(f"/dashboard/quarantine/{row['id']}?replayed=1&accepted=0")
    page = dash.get(f"/quarantine/{row['id']}?replayed=1&accepted=0").get_data(as_text=True)
    assert "still refused: 400 invalid_json" in page and "not json" in page
    assert dash.ledger.count_events() == 0 and len(dash.ledger.list_quarantine()) == 1


def test_replaying_ticked_and_all_quarantined_bodies(dash: Dash) -> None:
    first, _, third = (_quarantine_valid_body(dash, i) for i in (71, 72, 73))
    answer = post(dash, "/quarantine/replay", "/quarantine", action="selected", selected=[str(first), str(third)])
    assert answer.headers["Location"].endswith("replayed=2&accepted=2")
    assert dash.ledger.get_event("72") is None
    answer = post(dash, "/quarantine/replay", "/quarantine", action="all")
    assert answer.headers["Location"].endswith("replayed=1&accepted=1")
    assert all(dash.ledger.get_event(i) for i in ("71", "72", "73"))
    assert "The quarantine is empty" in dash.get("/quarantine").get_data(as_text=True)
    assert dash.get("/quarantine?all=1").get_data(as_text=True).count("accepted as event") == 3


def test_a_dead_letter_purged_by_retention_is_not_offered_for_replay(dash: Dash) -> None:
    kept, purged = dead_letters(dash, 1, 2)
    with dash.ledger.engine.begin() as connection:
        connection.execute(
            update(events).where(events.c.event_id == purged).values(received_at=utcnow() - timedelta(days=9))
        )
    assert dash.ledger.retention.purge(cutoff(8)).events == 1
    page = dash.get("/dead").get_data(as_text=True)
    assert page.count('name="one"') == 1 and "Replay all 1" in page
    assert "1 older delivery of calls past retention" in page
    event_page = dash.get(f"/events/{purged}").get_data(as_text=True)
    assert "Content purged by retention" in event_page and "Replay" not in event_page
    # A stale form (ticked before the purge) replays what can be replayed and skips the purged one.
    answer = post(
        dash, "/dead/replay", "/dead", action="selected", selected=[str(delivery_id(dash, e)) for e in (kept, purged)]
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("requeued=1")
    assert statuses(dash.ledger, kept) == ["pending"] and statuses(dash.ledger, purged) == ["dead"]
