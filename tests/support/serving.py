"""Real apps served over real HTTP on loopback, in a thread, for the length of a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import make_server

from connector.app import create_app
from connector.config import Settings
from connector.ledger import Ledger
from tests.support.settings import TOKEN


@dataclass
class Served:
    """A receiver served over real HTTP on loopback."""

    base_url: str
    url: str
    token: str
    ledger: Ledger
    settings: Settings


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve `app` on a threaded Werkzeug server on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def serve(settings: Settings, ledger: Ledger) -> Iterator[Served]:
    """The receiver app for `settings` served on loopback until the generator is closed."""
    with serving(create_app(settings, ledger=ledger)) as base:
        yield Served(base, base + settings.receiver.path, TOKEN, ledger, settings)
