"""The dashboard blueprint: access checks before every request, headers after, shared template helpers."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, g, render_template, request

from connector.config import Settings
from connector.dashboard import actions, security, views
from connector.dashboard.context import EXTENSION_KEY, DashboardState, state
from connector.dashboard.settings import DashboardSettings
from connector.dashboard.throttle import LoginThrottle
from connector.errors import ConfigError, ConfigProblem, StoreError
from connector.ledger import Ledger

log = logging.getLogger(__name__)


def register(app: Flask, settings: Settings, ledger: Ledger, dashboard: DashboardSettings) -> bool:
    """Build and register the blueprint at `dashboard.path`; see `connector.dashboard.init_app`."""
    if EXTENSION_KEY in app.extensions:
        log.warning("dashboard already registered on this app; the second registration is ignored")
        return True
    if not dashboard.enabled:
        log.debug("dashboard disabled (dashboard.enabled: false)")  # `serve` says it once, in its start-up block
        return False
    if dashboard.password is None:
        log.debug(
            "dashboard disabled: no password; set dashboard.password (e.g. "
            "`password: ${CONNECTOR_DASHBOARD_PASSWORD}`) to serve it at %s",
            dashboard.path,
        )
        return False
    problems = password_problems(settings, dashboard)
    if problems:
        raise ConfigError(settings.source, problems)
    password = dashboard.password.get_secret_value()
    credentials = security.Credentials.of(dashboard.username, password)
    throttle = LoginThrottle(
        dashboard.max_failed_logins, dashboard.login_lockout_s, settings.worker.redis_url or "memory://"
    )
    app.extensions[EXTENSION_KEY] = DashboardState(
        settings, ledger, dashboard, credentials, credentials.csrf(), throttle
    )
    app.register_blueprint(_blueprint(), url_prefix=dashboard.path)
    app.after_request(_headers_under(dashboard.path))
    where = "loopback only" if not dashboard.allow_remote else "remote addresses allowed"
    log.debug("dashboard at %s (HTTP Basic; %s)", dashboard.path, where)  # once per process: serve's block says it
    return True


def password_problems(settings: Settings, dashboard: DashboardSettings) -> list[ConfigProblem]:
    """The dashboard password must differ from every webhook token (`serve` checks it before gunicorn starts)."""
    if not dashboard.enabled or dashboard.password is None:
        return []
    password = dashboard.password.get_secret_value().encode("utf-8")
    for token in settings.receiver.auth.tokens:
        if hmac.compare_digest(password, token.get_secret_value().encode("utf-8")):
            return [
                ConfigProblem(
                    "dashboard.password",
                    "must differ from the webhook token: the webhook token never opens the dashboard",
                )
            ]
    return []


def _blueprint() -> Blueprint:
    bp = Blueprint(
        "dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
    )
    bp.before_request(_guard)
    bp.after_request(security.add_security_headers)
    bp.context_processor(_template_helpers)
    bp.register_error_handler(StoreError, _store_down)
    views.register(bp)
    actions.register(bp)
    bp.add_url_rule("/<path:rest>", "not_found", _not_found, methods=["GET", "POST"])
    return bp


def _headers_under(prefix: str) -> Callable[[Response], Response]:
    """Security headers also on what the blueprint never sees (405, routing errors) under its prefix."""

    def add(response: Response) -> Response:
        if request.path == prefix or request.path.startswith(prefix + "/"):
            security.add_security_headers(response)
        return response

    return add


def _not_found(rest: str) -> tuple[str, int]:
    """Unknown dashboard URLs: authenticated first (the guard), then an HTML 404."""
    return render_template(
        "dashboard/error.html", title="Not found", message="There is no dashboard page at this address."
    ), 404


def _guard() -> Response | None:
    """Loopback (unless allowed), then HTTP Basic, then CSRF on every POST."""
    current = state()
    refusal = security.remote_refusal(request, current.dashboard.allow_remote)
    if refusal:
        return security.add_security_headers(security.forbidden(refusal))
    client = request.remote_addr or "-"
    wait_s = current.throttle.locked_for(client)
    if wait_s:
        return security.add_security_headers(security.too_many_attempts(wait_s))
    user = current.credentials.check(request)
    if user is None:
        if request.authorization is not None:  # a browser's first request carries no credential: not a failure
            current.throttle.failed(client)
        return security.add_security_headers(security.unauthorized())
    g.dashboard_user = user
    if _carries_nul():
        # Nothing stored holds one (a NUL in an event id is refused at receipt), and PostgreSQL text cannot
        # even compare with one: without this, a search for it was a 500 there, and an event page a false
        # "store unavailable", where SQLite answered "no match".
        return security.add_security_headers(security.bad_request("the address or form contains a NUL character"))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if not security.same_origin(request):
            return security.add_security_headers(security.bad_request("the form was posted from another site"))
        if not current.csrf.valid(user, request.form.get(security.CSRF_FIELD)):
            return security.add_security_headers(
                security.bad_request(
                    "the form's CSRF token is missing, invalid or expired; reload the page and try again"
                )
            )
    return None


def _carries_nul() -> bool:
    """A NUL character in the path, a query parameter or a posted field (all reach the store's queries), except
    in the preview's pasted payload: never stored, and its own check says what is wrong with it."""
    values = [request.path, *(v for listed in request.args.listvalues() for v in listed)]
    if request.method == "POST" and request.endpoint != "dashboard.preview":
        values += [v for listed in request.form.listvalues() for v in listed]
    return any("\x00" in value for value in values)


def _template_helpers() -> dict[str, Any]:
    current = state()
    user = getattr(g, "dashboard_user", "")
    return {
        "csrf_field": security.CSRF_FIELD,
        "csrf_token": lambda: current.csrf.issue(user),
        "dashboard_user": user,
        "now": datetime.now(UTC),
        "ago": ago,
        "when": when,
        "yesno": yesno,
    }


def _store_down(exc: StoreError) -> tuple[str, int]:
    log.error("dashboard: store unavailable: %s", exc)
    return render_template(
        "dashboard/error.html",
        title="Store unavailable",
        message="The store did not answer; the page cannot be shown. " + str(exc),
    ), 503


def yesno(value: object) -> str:
    """True/False/None as yes/no/—."""
    return "—" if value is None else ("yes" if value else "no")


def when(value: datetime | str | None) -> str:
    """A timestamp as `2026-11-26 14:03:12 UTC`."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    """A time relative to now: `3 min ago`, `in 2 h 5 min`."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
