"""The real receiver app served over real HTTP on loopback, in a thread, for the length of a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from werkzeug.serving import make_server

from connector.config import Settings
from connector.ledger import Ledger
from connector.receiver.app import create_app
from tests.support.settings import TOKEN


@dataclass
class Served:
    """A receiver served over real HTTP on loopback."""

    base_url: str
    url: str
    token: str
    ledger: Ledger
    settings: Settings


def serve(settings: Settings, ledger: Ledger) -> Iterator[Served]:
    """Serve the app on a threaded Werkzeug server on a free loopback port until the generator is closed."""
    app = create_app(settings, ledger=ledger)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        yield Served(base, base + settings.receiver.path, TOKEN, ledger, settings)
    finally:
        server.shutdown()
        thread.join(5)
