"""Who gets in: its own Basic credential (never the webhook token), loopback only by default, CSRF on
every action, security headers on every response, and no dashboard at all without a password."""

from __future__ import annotations

import base64
import logging
import re
import time
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer
from pydantic import ValidationError

from connector.app import create_app
from connector.dashboard import DashboardSettings, init_app
from connector.dashboard.security import CSRF_MAX_AGE_S, Credentials, is_loopback
from connector.errors import ConfigError
from connector.ledger import Ledger
from tests.support.dashboard import PASSWORD, USER, Dash, basic, csrf_token, dashboard_app
from tests.support.settings import TOKEN, make_settings

PAGES = ["/", "/events", "/dead", "/dead?status=held", "/quarantine", "/quarantine?all=1", "/preview"]
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_answers_with_the_credential(dash: Dash, page: str) -> None:
    answer = dash.get(page)
    assert answer.status_code == 200, answer.data[:500]
    assert answer.mimetype == "text/html"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(USER, "wrong-password"),
        basic("root", PASSWORD),
        basic(USER, PASSWORD + "x"),
        {"Authorization": TOKEN},  # the webhook's own header and token
        {"Authorization": f"Bearer {TOKEN}"},
        basic(USER, TOKEN),
        basic("", TOKEN),
        {"Authorization": "Basic not-base64!"},
    ],
    ids=[
        "none",
        "wrong-password",
        "wrong-user",
        "longer-password",
        "webhook-token",
        "bearer-token",
        "token-as-password",
        "token-no-user",
        "garbage",
    ],
)
def test_anything_but_the_dashboard_credential_gets_401(dash: Dash, headers: dict[str, str]) -> None:
    for page in ("/", "/events", "/static/dashboard.css"):
        answer = dash.client.get("/dashboard" + page, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="connector dashboard"')
        assert b"event" not in answer.data.lower()


def test_a_post_without_credentials_is_401_and_changes_nothing(dash: Dash) -> None:
    answer = dash.client.post("/dashboard/dead/replay", data={"action": "all"})
    assert answer.status_code == 401


def test_non_ascii_credentials_work(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}")
    ledger = Ledger.open(settings.store)
    app = dashboard_app(settings, ledger, username="opérateur", password="pässwörd-✓")
    token = base64.b64encode("opérateur:pässwörd-✓".encode()).decode()
    assert app.test_client().get("/dashboard/", headers={"Authorization": f"Basic {token}"}).status_code == 200
    ledger.dispose()


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.7", "203.0.113.9", "2001:db8::1", "::ffff:10.0.0.1"])
def test_remote_addresses_are_refused_by_default(dash: Dash, address: str) -> None:
    answer = dash.client.get("/dashboard/", headers=basic(), environ_base={"REMOTE_ADDR": address})
    assert answer.status_code == 403
    assert b"allow_remote" in answer.data
    assert answer.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_served(dash: Dash, address: str) -> None:
    assert dash.client.get("/dashboard/", headers=basic(), environ_base={"REMOTE_ADDR": address}).status_code == 200


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_request_through_a_proxy_is_refused_by_default(dash: Dash, header: str) -> None:
    answer = dash.client.get("/dashboard/", headers={**basic(), header: "198.51.100.4"})
    assert answer.status_code == 403


def test_allow_remote_serves_other_addresses_still_with_the_credential(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}")
    ledger = Ledger.open(settings.store)
    client = dashboard_app(settings, ledger, allow_remote=True).test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/dashboard/", headers=basic(), environ_base=remote).status_code == 200
    assert client.get("/dashboard/", environ_base=remote).status_code == 401
    ledger.dispose()


def test_the_receiver_is_not_affected_by_the_dashboard_checks(dash: Dash) -> None:
    answer = dash.client.get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert answer.status_code == 200


@pytest.mark.parametrize("page", PAGES + ["/events/nope", "/static/dashboard.css"])
def test_security_headers_on_every_dashboard_response(dash: Dash, page: str) -> None:
    for answer in (dash.get(page), dash.client.get("/dashboard" + page)):
        for name, value in HEADERS.items():
            assert answer.headers[name] == value, (page, name)
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy


def test_pages_have_no_inline_script_or_style(dash: Dash) -> None:
    for page in PAGES:
        html = dash.get(page).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), page
        assert "<style" not in html and " style=" not in html and " onclick=" not in html, page


def test_post_without_csrf_token_is_400(dash: Dash) -> None:
    for path, data in [
        ("/dead/replay", {"action": "all"}),
        ("/quarantine/replay", {"action": "all"}),
        ("/events/replay", {"event_id": "1"}),
        ("/preview", {"body": "{}"}),
    ]:
        answer = dash.client.post("/dashboard" + path, data=data, headers=basic())
        assert answer.status_code == 400, path
        assert b"CSRF" in answer.data
        assert answer.headers["Cache-Control"] == "no-store"


def test_a_forged_expired_or_foreign_token_is_400(dash: Dash) -> None:
    csrf = Credentials.of(USER, PASSWORD).csrf()
    other = Credentials.of(USER, "another-password").csrf()
    for token in [
        "",
        "123",
        "abc.def",
        other.issue(USER),
        csrf.issue("someone-else"),
        csrf.issue(USER, now=time.time() - 13 * 3600),
        csrf.issue(USER, now=time.time() + 3600),
        _tampered(csrf.issue(USER)),
        URLSafeTimedSerializer(csrf.key, salt="another-purpose").dumps(USER),
    ]:
        answer = dash.client.post(
            "/dashboard/dead/replay", data={"action": "all", "csrf_token": token}, headers=basic()
        )
        assert answer.status_code == 400, token


def _tampered(token: str) -> str:
    """The same token with one character of its payload changed."""
    first = "B" if token[0] != "B" else "C"
    return first + token[1:]


def test_csrf_token_lifetime_and_binding() -> None:
    csrf = Credentials.of(USER, PASSWORD).csrf()
    issued = time.time()
    token = csrf.issue(USER, now=issued)
    assert csrf.valid(USER, token, now=issued + CSRF_MAX_AGE_S - 60)
    assert not csrf.valid(USER, token, now=issued + CSRF_MAX_AGE_S + 60)
    assert not csrf.valid("someone-else", token, now=issued)
    assert not csrf.valid(USER, None)
    assert not Credentials.of(USER, "another-password").csrf().valid(USER, token, now=issued)


def test_a_page_token_works_and_a_foreign_origin_is_refused(dash: Dash) -> None:
    token = csrf_token(dash.get("/preview").get_data(as_text=True))
    data = {"action": "all", "csrf_token": token}
    foreign = dash.client.post("/dashboard/dead/replay", data=data, headers={**basic(), "Origin": "http://evil.test"})
    assert foreign.status_code == 400
    other_port = dash.client.post(
        "/dashboard/dead/replay", data=data, headers={**basic(), "Origin": "http://localhost:8080"}
    )
    assert other_port.status_code == 400
    for origin in (None, "null", "http://localhost", "https://localhost"):  # https: a TLS proxy in front
        headers = basic() if origin is None else {**basic(), "Origin": origin}
        answer = dash.client.post("/dashboard/dead/replay", data=data, headers=headers)
        assert answer.status_code == 303, origin


def test_without_a_password_there_is_no_dashboard(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}")
    ledger = Ledger.open(settings.store)
    app = create_app(settings, ledger=ledger)
    # debug-level: every receiver process registers it; `serve`'s start-up block says it once (test_shutdown.py)
    with caplog.at_level(logging.DEBUG, logger="connector.dashboard.blueprint"):
        assert init_app(app, settings, ledger, DashboardSettings()) is False
    assert "dashboard.password" in caplog.text
    assert app.test_client().get("/dashboard/", headers=basic()).status_code == 404
    disabled = create_app(settings, ledger=ledger)
    assert init_app(disabled, settings, ledger, DashboardSettings(password="pw", enabled=False)) is False
    ledger.dispose()


def test_the_webhook_token_cannot_be_the_dashboard_password(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}")
    ledger = Ledger.open(settings.store)
    with pytest.raises(ConfigError, match="dashboard.password") as refused:
        init_app(create_app(settings, ledger=ledger), settings, ledger, DashboardSettings(password=TOKEN))
    ledger.dispose()
    assert refused.value.source == settings.source == "<test>"  # the config file's name, as serve's error gives it


def test_a_custom_path(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}")
    ledger = Ledger.open(settings.store)
    client = dashboard_app(settings, ledger, path="/ops/board").test_client()
    answer = client.get("/ops/board/events", headers=basic())
    assert answer.status_code == 200 and b"/ops/board/static/dashboard.css" in answer.data
    ledger.dispose()


@pytest.mark.parametrize(
    "document",
    [
        {"password": ""},
        {"password": "  "},
        {"path": "dashboard"},
        {"path": "/dash/"},
        {"path": "/"},
        {"username": ""},
        {"username": "a:b"},
        {"unknown": 1},
    ],
)
def test_settings_refuse_bad_values(document: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DashboardSettings.model_validate(document)


def test_settings_defaults_and_secret() -> None:
    defaults = DashboardSettings()
    assert (defaults.enabled, defaults.path, defaults.username, defaults.password, defaults.allow_remote) == (
        True,
        "/dashboard",
        "admin",
        None,
        False,
    )
    assert not defaults.active
    configured = DashboardSettings(password="s3cret-value")
    assert configured.active and "s3cret-value" not in repr(configured)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not any(is_loopback(a) for a in (None, "", "localhost", "10.0.0.1", "0.0.0.0", "::", "garbage"))


def test_unknown_dashboard_urls_need_the_credential_too_and_carry_the_headers(dash: Dash) -> None:
    assert dash.client.get("/dashboard/no/such/page").status_code == 401
    missing = dash.get("/no/such/page")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert missing.headers["X-Frame-Options"] == "DENY"
    not_allowed = dash.client.delete("/dashboard/", headers=basic())
    assert not_allowed.status_code == 405 and not_allowed.headers["Cache-Control"] == "no-store"
    assert "X-Frame-Options" not in dash.client.get("/healthz").headers  # the receiver's own answers are untouched


def test_create_app_serves_the_dashboard_configured_in_the_yaml(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}", dashboard={"password": PASSWORD})
    ledger = Ledger.open(settings.store)
    client = create_app(settings, ledger=ledger).test_client()
    assert client.get("/dashboard/", headers=basic()).status_code == 200
    assert client.get("/dashboard/", headers={"Authorization": TOKEN}).status_code == 401
    assert client.get("/dashboard/", headers=basic(), environ_base={"REMOTE_ADDR": "10.0.0.8"}).status_code == 403
    ledger.dispose()


def test_failed_logins_lock_the_address_out_even_for_the_right_password(
    dash: Dash, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connector.dashboard")
    defaults = DashboardSettings(password=PASSWORD)
    limit = defaults.max_failed_logins
    assert dash.client.get("/dashboard/").status_code == 401  # no credential yet: not a failed login
    for _ in range(limit):
        assert dash.client.get("/dashboard/", headers=basic(USER, "guess")).status_code == 401
    locked = dash.client.get("/dashboard/", headers=basic(USER, "guess"))
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= defaults.login_lockout_s
    assert dash.get("/").status_code == 429  # the right password waits out the window too
    other = dash.client.get("/dashboard/", headers=basic(), environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200  # per address
    failures = [r for r in caplog.records if r.getMessage() == "dashboard login failed"]
    assert len(failures) == limit
    assert all("guess" not in str(r.__dict__) for r in caplog.records)


def test_the_lockout_ends_with_its_window(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'd.db'}")
    ledger = Ledger.open(settings.store)
    try:
        app = dashboard_app(settings, ledger, max_failed_logins=2, login_lockout_s=1)
        client = app.test_client()
        for _ in range(2):
            assert client.get("/dashboard/", headers=basic(USER, "guess")).status_code == 401
        assert client.get("/dashboard/", headers=basic()).status_code == 429
        time.sleep(1.2)
        assert client.get("/dashboard/", headers=basic()).status_code == 200
    finally:
        ledger.dispose()


@pytest.mark.parametrize(
    "page",
    [
        "/quarantine/" + "9" * 23,
        "/quarantine/0",
        "/quarantine/" + str(2**63),
        "/events/" + "9" * 30 + "?page=" + "9" * 30,
        "/events?page=" + "9" * 30,
    ],
)
def test_out_of_range_ids_and_pages_are_not_server_errors(dash: Dash, page: str) -> None:
    answer = dash.get(page)
    assert answer.status_code in (200, 404), answer.data[:300]
    if page.startswith("/quarantine/"):
        assert answer.status_code == 404
