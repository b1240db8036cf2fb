"""Runs the receiver on gunicorn (pre-forking, production grade) from inside `connector serve`.

The schema is migrated once in the master before any worker forks; each worker then builds its
own app and engine, because database connections must never cross a fork.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from connector.app import create_app
from connector.config import Settings
from connector.ledger import Ledger
from connector.logs import setup_logging


class ReceiverServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose workers each call the app factory with the given settings."""

    def __init__(self, settings: Settings, *, host: str, port: int, workers: int) -> None:
        self.settings = settings
        self.options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
            "timeout": settings.serve.timeout_s,
            "graceful_timeout": settings.serve.timeout_s,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "connector-receiver",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        setup_logging(self.settings.logging)
        return create_app(self.settings, ledger=Ledger.open(self.settings.store, migrate_schema=False))


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Migrate the store, then serve until SIGTERM/SIGINT (gunicorn finishes in-flight requests)."""
    ledger = Ledger.open(settings.store)
    ledger.dispose()
    ReceiverServer(
        settings,
        host=host or settings.receiver.host,
        port=port or settings.receiver.port,
        workers=workers or settings.serve.workers,
    ).run()
