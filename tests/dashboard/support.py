"""Helpers for the dashboard tests: an app with the dashboard, served on loopback, and a real Chromium.

The browser is Debian's `chromium` driven by Playwright (`executable_path`, never `playwright
install`). Without /usr/bin/chromium the browser tests skip, except under CI=true, where they fail:
CI installs it.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from connector.app import create_app
from connector.config import Settings
from connector.dashboard import DashboardSettings, init_app
from connector.ledger import Ledger

USER = "admin"
PASSWORD = "dashboard-test-password"
CHROMIUM = os.environ.get("CONNECTOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-breakpad",
]


def dashboard_settings(**overrides: Any) -> DashboardSettings:
    return DashboardSettings.model_validate({"password": PASSWORD, **overrides})


def dashboard_app(settings: Settings, ledger: Ledger, **overrides: Any) -> Flask:
    """The real app (receiver, health) with the dashboard registered the way app.py will."""
    app = create_app(settings, ledger=ledger)
    assert init_app(app, settings, ledger, dashboard_settings(**overrides))
    return app


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None. Under CI=true nothing may be missing."""
    problems = []
    if not os.path.exists(CHROMIUM):
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("the playwright package is missing (pip install playwright)")
    return "; ".join(problems) or None


@contextmanager
def browser_page(*, user: str = USER, password: str = PASSWORD, width: int = 1280, height: int = 860) -> Iterator[Any]:
    """A page in a fresh headless Chromium profile that answers HTTP Basic with the given credentials.

    Requests to anything but loopback are aborted, so a page can never reach the network.
    """
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                http_credentials={"username": user, "password": password},
                viewport={"width": width, "height": height},
                device_scale_factor=1,
                locale="en-US",
                timezone_id="UTC",
            )
            context.set_default_timeout(15_000)
            context.route("**/*", _loopback_only)
            try:
                page = context.pages[0] if context.pages else context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _loopback_only(route: Any) -> None:
    from urllib.parse import urlsplit

    host = urlsplit(route.request.url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        route.continue_()
    else:
        route.abort()
