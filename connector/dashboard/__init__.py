"""The operations dashboard: server-rendered pages over the ledger, with replay and mapping preview.

Kept light on import: `connector.config` imports `connector.dashboard.settings`, so nothing here
may import the config (or Flask) at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.dashboard.settings import DashboardSettings

if TYPE_CHECKING:
    from flask import Flask

    from connector.config import Settings
    from connector.ledger import Ledger

__all__ = ["DashboardSettings", "init_app"]


def init_app(app: Flask, settings: Settings, ledger: Ledger, dashboard: DashboardSettings | None = None) -> bool:
    """Register the dashboard on `app` when it is enabled and has a password; True when registered.

    `dashboard` defaults to `settings.dashboard` (or the defaults, which serve nothing without a
    password). Raises ConfigError when the dashboard password equals a webhook token.
    """
    from connector.dashboard.blueprint import register

    if dashboard is None:
        dashboard = getattr(settings, "dashboard", None) or DashboardSettings.model_validate({})
    return register(app, settings, ledger, dashboard)
