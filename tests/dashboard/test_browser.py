"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright), served over
real HTTP on loopback: pages load under the CSP with no console error, buttons replay for real.

Skipped only when Chromium (or Playwright) is missing and CI is not set; under CI they fail then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.dashboard import Dash, browser_page, chromium_missing_reason
from tests.support.delivery import ingest, statuses
from tests.support.serving import serving


@pytest.fixture(scope="module", autouse=True)
def chromium_available() -> None:
    missing = chromium_missing_reason()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"browser tests cannot run under CI: {missing}; .ci/run must install it")
    pytest.skip(f"browser tests need Chromium and Playwright: {missing} (CI is not set)")


@dataclass
class Browser:
    """A served dashboard and a Chromium page logged in to it; console errors are collected."""

    page: Any
    root: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    accept_dialogs: bool = True

    def open(self, path: str) -> Any:
        response = self.page.goto(self.root + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return response


@pytest.fixture
def browser(dash: Dash) -> Iterator[Browser]:
    with serving(dash.app) as base, browser_page() as page:
        seen = Browser(page, base + "/dashboard")
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.errors.append(str(e)))

        def on_dialog(dialog: Any) -> None:
            seen.dialogs.append(dialog.message)
            dialog.accept() if seen.accept_dialogs else dialog.dismiss()

        page.on("dialog", on_dialog)
        yield seen


def _dead_letters(dash: Dash, *ids: int) -> None:
    for i in ids:
        ingest(dash.ledger, i, record_phone_number=f"+1415555{1000 + i:04d}")
    dash.break_mapping()
    dash.deliver()


def test_every_main_page_loads_styled_with_no_console_error(dash: Dash, browser: Browser) -> None:
    _dead_letters(dash, 1)
    ingest(dash.ledger, 2, end_reason="schedule_call_back")
    dash.client.post(
        dash.settings.receiver.path,
        data=b"{oops",
        headers={"Authorization": "test-token-" + "x" * 20, "Content-Type": "application/json"},
    )
    page = browser.page
    for path, heading in [
        ("/", "Overview"),
        ("/events", "Events"),
        ("/events/1", "Event 1"),
        ("/dead", "Dead letters"),
        ("/dead?status=held", "Held for review"),
        ("/quarantine", "Quarantine"),
        ("/quarantine/1", "Quarantined body 1"),
        ("/preview", "Mapping preview"),
    ]:
        browser.open(path)
        assert page.inner_text("h1") == heading
        background = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
        assert background == "rgb(24, 33, 58)", "the stylesheet did not load"
    assert browser.errors == []  # a CSP violation or a script error would be reported here
    browser.open("/")
    assert "running" in page.inner_text("#sink-rec") and page.inner_text(".tile.bad .num") == "1"


def test_replay_a_dead_letter_with_its_button(dash: Dash, browser: Browser) -> None:
    _dead_letters(dash, 1, 2)
    page = browser.page
    browser.open("/dead")
    row = page.locator("#dead tbody tr", has=page.get_by_role("link", name="1", exact=True))
    assert "The CRM refused the data as invalid" in row.inner_text()
    row.get_by_role("button", name="Replay").click()
    page.wait_for_url("**/dashboard/dead?requeued=1")
    assert "Replayed: 1 delivery requeued" in page.inner_text("[role=status]")
    assert statuses(dash.ledger, "1") == ["pending"] and statuses(dash.ledger, "2") == ["dead"]
    assert page.locator("#dead tbody tr").count() == 1  # only the other one is still dead
    dash.fix_mapping()
    dash.deliver()
    browser.open("/events/1")
    assert page.inner_text("#delivery-rec .badge") == "succeeded"
    assert "2x-1:activity" in page.inner_text("#delivery-rec")
    assert browser.errors == []


def test_bulk_replay_asks_first_and_select_all_ticks_every_row(dash: Dash, browser: Browser) -> None:
    _dead_letters(dash, 1, 2, 3)
    page = browser.page
    browser.open("/dead")
    page.check("input[data-select-all]")
    assert page.locator("input[name=selected]:checked").count() == 3
    page.get_by_role("button", name="Replay selected").click()
    page.wait_for_url("**/dashboard/dead?requeued=3")
    assert all(statuses(dash.ledger, e) == ["pending"] for e in ("1", "2", "3"))
    dash.deliver()  # the mapping is still broken: dead again
    browser.open("/dead")
    browser.accept_dialogs = False  # "Cancel" in the confirmation: nothing happens
    page.get_by_role("button", name="Replay all 3").click()
    page.wait_for_timeout(300)
    assert browser.dialogs == ["Replay all 3 dead deliveries?"]
    assert page.url.endswith("/dashboard/dead")
    assert all(statuses(dash.ledger, e) == ["dead"] for e in ("1", "2", "3"))
    browser.accept_dialogs = True
    page.get_by_role("button", name="Replay all 3").click()
    page.wait_for_url("**/dashboard/dead?requeued=3")
    assert all(statuses(dash.ledger, e) == ["pending"] for e in ("1", "2", "3"))


def test_replay_a_quarantined_body_with_its_button(dash: Dash, browser: Browser) -> None:
    from connector.ledger import RejectedBody
    from connector.sample import sample_payload

    body = json.dumps(sample_payload(777)).encode()
    dash.ledger.quarantine(
        RejectedBody(
            body,
            "application/json",
            422,
            "validation_failed",
            "older rules",
            [{"path": "call", "message": "refused by an older version"}],
        )
    )
    page = browser.page
    browser.open("/quarantine")
    assert "Some fields have the wrong type" in page.inner_text("#quarantine")
    page.locator("#quarantine tbody tr").first.get_by_role("button", name="Replay").click()
    page.wait_for_url("**/dashboard/quarantine?replayed=1&accepted=1")
    assert "1 accepted as new events" in page.inner_text("[role=status]")
    assert dash.ledger.get_event("777") is not None
    browser.open("/events")
    assert "777" in page.inner_text("#events")


def test_a_script_in_a_transcript_stays_text(dash: Dash, browser: Browser) -> None:
    ingest(
        dash.ledger,
        66,
        transcript=[
            {"role": "User", "content": "<script>alert(1)</script>"},
            {"role": "Assistant", "content": '<img src=x onerror="alert(2)">'},
        ],
    )
    page = browser.page
    browser.open("/events/66")
    assert "<script>alert(1)</script>" in page.inner_text(".transcript")
    assert page.locator(".transcript img").count() == 0
    assert browser.dialogs == [] and browser.errors == []


def test_preview_in_the_browser(dash: Dash, browser: Browser) -> None:
    page = browser.page
    browser.open("/preview")
    page.fill(
        "#body", json.dumps({"id": 5, "call": {"end_reason": "do_not_call"}, "record_phone_number": "+14155550100"})
    )
    page.get_by_role("button", name="Show the plan").click()
    page.wait_for_selector("#plan-rec")
    assert "Do-not-call: YES" in page.inner_text("#plan-rec")
    page.fill("#body", "{broken")
    page.get_by_role("button", name="Show the plan").click()
    assert "invalid_json" in page.inner_text("#preview-error")
    assert dash.ledger.count_events() == 0


def test_wrong_credentials_get_401_in_the_browser(dash: Dash) -> None:
    with serving(dash.app) as base, browser_page(password="not-the-password") as page:
        response = page.goto(base + "/dashboard/")
        assert response is not None and response.status == 401
        assert "Authentication required" in page.content()
