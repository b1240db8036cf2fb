"""Runs the receiver on gunicorn (pre-forking, production grade) from inside `connector serve`,
plus the embedded delivery worker in a process of its own, supervised by the gunicorn master.

The schema is migrated once in the master before any worker forks; each worker then builds its
own app and engine, because database connections must never cross a fork.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import threading
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from connector.app import create_app
from connector.config import Settings
from connector.ledger import Ledger
from connector.logs import setup_logging
from connector.metrics import MULTIPROC_ENV


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
            "when_ready": self._start_delivery_worker,
            "on_exit": self._stop_delivery_worker,
        }
        self._delivery: DeliveryProcess | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def _start_delivery_worker(self, _server: Any) -> None:
        if self.settings.worker.embedded and self.settings.enabled_sinks():
            self._delivery = DeliveryProcess(self.settings)
            self._delivery.start()

    def _stop_delivery_worker(self, _server: Any) -> None:
        if self._delivery is not None:
            self._delivery.stop()

    def load(self) -> Flask:
        setup_logging(self.settings.logging)
        return create_app(self.settings, ledger=Ledger.open(self.settings.store, migrate_schema=False))


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Migrate the store, then serve until SIGTERM/SIGINT (gunicorn finishes in-flight requests).

    Counters of every process (gunicorn workers, the delivery worker) meet in a fresh
    prometheus multiprocess directory, so `/metrics` sums them whichever worker answers.
    """
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="connector-metrics-")
        from prometheus_client import values

        # prometheus-client picks its value storage when first imported (already done here):
        # switch it to the shared-file kind before any worker creates a metric.
        values.ValueClass = values.get_value_class()
    ledger = Ledger.open(settings.store)
    ledger.dispose()
    ReceiverServer(
        settings,
        host=host or settings.receiver.host,
        port=port or settings.receiver.port,
        workers=workers or settings.serve.workers,
    ).run()


class DeliveryProcess:
    """The embedded delivery worker: its own process, restarted if it dies, stopped with SIGTERM."""

    RESTART_DELAY_S = 2.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="delivery-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._supervisor.start()

    def _spawn(self) -> None:
        from connector.worker import run_worker

        self._process = self._context.Process(target=run_worker, args=(self._settings,), name="connector-worker")
        self._process.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            if self._process is not None and not self._process.is_alive():
                logging.getLogger(__name__).error(
                    "embedded delivery worker exited (code %s); restarting", self._process.exitcode)
                time.sleep(self.RESTART_DELAY_S)
                if not self._stopping.is_set():
                    self._spawn()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: the worker finishes the delivery in hand and releases the rest."""
        self._stopping.set()
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
