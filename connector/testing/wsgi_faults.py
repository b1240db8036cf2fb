"""Faults a CRM emulator does not offer itself, injected in front of any WSGI app (an emulator, a test endpoint).

Two faults matter to the contract and are the same for every HTTP CRM:

- a **lost answer**: the CRM carried the request out, then the connection dropped before the answer arrived (the
  connector cannot know whether it wrote); the middleware runs the request to the end, then shuts the socket;
- a **refused record**: the CRM refuses, as invalid, every request whose body contains a marker (e.g. one event's
  idempotency key), so one event of many fails and the others must not.

Install with :func:`install` on a running werkzeug server (the emulators serve with werkzeug).
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
RequestMatch = Callable[[str, str, bytes], bool]
"""``(method, path, body) -> bool``: which requests a fault applies to."""


@dataclass
class Refusal:
    """Answer ``status`` with ``body`` (JSON) to every request whose body contains ``marker``."""

    marker: bytes
    status: int
    body: Any


@dataclass
class _Drop:
    remaining: int
    match: RequestMatch


class FaultInjector:
    """WSGI middleware: lost answers and refused records in front of ``app``; thread-safe."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._drops: list[_Drop] = []
        self._refusals: list[Refusal] = []
        self.dropped = 0
        """How many answers were dropped after the request was carried out."""
        self.seen = 0
        """Requests received (answered, refused or dropped)."""
        self.refused: list[str] = []
        """``METHOD path`` of every refused request, in order (which path a sink took: batch or single)."""

    def drop_answers(self, match: RequestMatch, n: int = 1) -> None:
        """The next ``n`` requests ``match`` accepts are carried out, then their connection is closed unanswered."""
        with self._lock:
            self._drops.append(_Drop(n, match))

    def refuse(self, marker: str, status: int, body: Any) -> None:
        """Every later request whose body contains ``marker`` is answered ``status`` / ``body`` (not carried out)."""
        with self._lock:
            self._refusals.append(Refusal(marker.encode(), status, body))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        with self._lock:
            self.seen += 1
            refusal = next((r for r in self._refusals if raw and r.marker in raw), None)
            drop = (
                None
                if refusal
                else next((d for d in self._drops if d.remaining > 0 and d.match(method, path, raw)), None)
            )
            if drop is not None:
                drop.remaining -= 1
                self.dropped += 1
            if refusal is not None:
                self.refused.append(f"{method} {path}")
        if refusal is not None:
            payload = json.dumps(refusal.body).encode()
            start_response(
                f"{refusal.status} Refused",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if drop is None:
            return self.app(environ, start_response)
        answer = self.app(environ, lambda *args, **kwargs: lambda data: None)
        try:
            for _ in answer:  # the CRM finishes the request: the write is applied
                pass
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        start_response("200 OK", [("Content-Length", "0")])
        return []


def install(server: Any) -> FaultInjector:
    """Put a FaultInjector in front of a running werkzeug server's app (its request handlers read ``server.app``
    for every request); returns it. Installing twice returns the first one."""
    if isinstance(server.app, FaultInjector):
        return server.app
    injector = FaultInjector(server.app)
    server.app = injector
    return injector


def writes_to(*paths: str, containing: str = "") -> RequestMatch:
    """A RequestMatch for writes (POST, PATCH, PUT) whose path ends with one of ``paths`` and whose body contains
    ``containing`` (e.g. a field name: a Composite request that reads schema is not the write)."""
    wanted = containing.encode()

    def match(method: str, path: str, body: bytes) -> bool:
        return method in ("POST", "PATCH", "PUT") and path.rstrip("/").endswith(paths) and wanted in body

    return match
