"""The dashboard's per-app state, kept apart from the blueprint so the views and actions that read it need not
import the blueprint that imports them (which was an import cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from connector.config import Settings
from connector.dashboard import security
from connector.dashboard.settings import DashboardSettings
from connector.dashboard.throttle import LoginThrottle
from connector.ledger import Ledger

EXTENSION_KEY = "connector_dashboard"


@dataclass
class DashboardState:
    """What the dashboard views need, attached to the app."""

    settings: Settings
    ledger: Ledger
    dashboard: DashboardSettings
    credentials: security.Credentials
    csrf: security.Csrf
    throttle: LoginThrottle
    capabilities: dict[str, tuple[int | None, float]] = field(default_factory=dict)
    """sink → (requests per window, window seconds) of its rate budget, filled lazily."""


def state() -> DashboardState:
    """The state `connector.dashboard.blueprint.register` attached to the current app."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
