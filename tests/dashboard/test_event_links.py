"""Every event is reachable from its link, whatever its id: the id travels percent-encoded in a query parameter
(`/dashboard/event?id=…`), where no dot-segment removal, `%0A` or `/` can change it; `/events/<id>` still opens."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from markupsafe import escape

from tests.support.dashboard import Dash, basic, browser_page, chromium_missing_reason, csrf_token
from tests.support.delivery import ingest
from tests.support.serving import serving

ODD_IDS = [
    "line\nbreak",
    "..",
    ".",
    "a/b",
    "/",
    "50%",
    "100%25",
    "with space",
    "naïve 日本",
    "a+b",
    "?q=1&x#y",
    "%2e%2e",
]
BASE = "http://127.0.0.1/dashboard/events"
"""Where the listing is; a browser resolves each link against it (urljoin removes `.` and `..` segments too)."""


def link_of(listing: str, event_id: str) -> str:
    """The href of the event's row in a page, as a browser reads it (HTML-unescaped, resolved)."""
    found = re.search(r'<a href="([^"]*)"><code>' + re.escape(str(escape(event_id))) + "</code></a>", listing)
    assert found, f"no link for {event_id!r}"
    return urljoin(BASE, found.group(1).replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", '"'))


def open_link(dash: Dash, url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    answer = dash.client.get(parts.path, query_string=parts.query, headers=basic())
    return answer.status_code, answer.get_data(as_text=True)


def test_each_events_link_opens_that_event_whatever_its_id(dash: Dash) -> None:
    for event_id in ODD_IDS:
        ingest(dash.ledger, event_id)
    listing = dash.get("/events", query_string={"page": 1}).get_data(as_text=True)
    for event_id in ODD_IDS:
        status, page = open_link(dash, link_of(listing, event_id))
        assert status == 200, (event_id, status)
        assert f"<h1>Event {escape(event_id)}</h1>" in page, event_id


def test_the_dead_letter_list_and_the_replay_redirect_lead_to_the_event(dash: Dash) -> None:
    event_id = "line\nbreak/.."
    ingest(dash.ledger, event_id)
    dash.break_mapping()
    dash.deliver()
    status, page = open_link(dash, link_of(dash.get("/dead").get_data(as_text=True), event_id))
    assert status == 200 and f"<h1>Event {escape(event_id)}</h1>" in page
    answer = dash.client.post(
        "/dashboard/events/replay", data={"event_id": event_id, "csrf_token": csrf_token(page)}, headers=basic()
    )
    assert answer.status_code == 303
    status, page = open_link(dash, urljoin(BASE, answer.headers["Location"]))
    assert status == 200 and "Replayed: 1 delivery requeued" in page


def test_the_older_path_links_still_open(dash: Dash) -> None:
    for event_id in ("77", "a b", "naïve"):
        ingest(dash.ledger, event_id)
    assert dash.get("/events/77").status_code == 200
    assert dash.get("/events/a%20b").status_code == 200
    assert dash.get("/events/na%C3%AFve").status_code == 200
    assert dash.get("/event", query_string={"id": "404404"}).status_code == 404
    assert dash.get("/event").status_code == 404  # no id: no such event, not a crash


@pytest.mark.skipif(chromium_missing_reason() is not None, reason="needs Chromium and Playwright")
def test_a_real_browser_follows_each_link_to_its_event(dash: Dash) -> None:
    for event_id in ODD_IDS:
        ingest(dash.ledger, event_id)
    with serving(dash.app) as base, browser_page() as page:
        for event_id in ODD_IDS:
            page.goto(base + "/dashboard/events")
            page.locator(
                "table a", has=page.locator("code", has_text=re.compile("^" + re.escape(event_id) + "$"))
            ).click()
            page.wait_for_load_state()
            assert page.text_content("h1") == f"Event {event_id}", (event_id, page.url)
