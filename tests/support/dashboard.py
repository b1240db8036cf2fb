"""Helpers for the dashboard tests: an app with the dashboard (and `Dash`, what the `dash` fixture yields),
served on loopback, and a real Chromium.

The browser is Debian's `chromium` driven by Playwright (`executable_path`, never `playwright
install`). Without /usr/bin/chromium the browser tests skip, except under CI=true, where they fail:
CI installs it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app
from connector.config import Settings
from connector.dashboard import DashboardSettings, init_app
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from tests.support.delivery import drain
from tests.support.recorder import Recorder

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
    """Dashboard settings with the test password."""
    return DashboardSettings.model_validate({"password": PASSWORD, **overrides})


def dashboard_app(settings: Settings, ledger: Ledger, **overrides: Any) -> Flask:
    """The real app (receiver, health) with the dashboard registered the way app.py will."""
    app = create_app(settings, ledger=ledger)
    assert init_app(app, settings, ledger, dashboard_settings(**overrides))
    return app


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    """An HTTP Basic header for the dashboard."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Dash:
    """The app with the dashboard, its ledger and settings, and a way to run the worker."""

    app: Flask
    client: FlaskClient
    ledger: Ledger
    settings: Settings
    recorder: Recorder
    mapping: Path

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get("/dashboard" + path, headers=basic(), **kwargs)

    def break_mapping(self) -> None:
        """A mapping writing a property the endpoint refuses: deliveries dead-letter at once (400)."""
        document = yaml.safe_load(default_mapping_path("hubspot").read_text())
        document["activity"]["properties"]["reject_me"] = True
        self.mapping.write_text(yaml.safe_dump(document))

    def fix_mapping(self) -> None:
        self.mapping.write_text(default_mapping_path("hubspot").read_text())

    def deliver(self) -> int:
        """Run a worker with the mapping as it is now until nothing is due."""
        worker = Worker(self.settings, ledger=self.ledger)
        worker.open()
        try:
            return drain(worker)
        finally:
            worker.close()


def csrf_token(html: str) -> str:
    """The CSRF token of the form on a dashboard page (a POST without it is refused)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


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
