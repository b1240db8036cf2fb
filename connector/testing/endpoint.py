"""A loopback endpoint for the ``http`` sink (connector/sinks/http.py), with the contract's fault knobs.

It keeps what a plain HTTP service would: every ``POST /actions`` is one record, and it does NOT deduplicate by
``key`` (a service is not required to), so the records show every double write; only a ``resolve_contact`` finds
the number's contact when it exists (one record per number, as a CRM). ``GET /actions/<key>`` finds the
first record of a key, ``GET /health`` checks the token. Served by werkzeug behind a
:class:`~connector.testing.wsgi_faults.FaultInjector` (lost answers, refused records).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connector.testing.wsgi_faults import FaultInjector, install


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class _Failure:
    status: int
    message: str
    retry_after: float | None


@dataclass
class ActionEndpoint:
    """The endpoint's state and knobs; ``url`` once started (use as a context manager)."""

    token: str = "contract-token"
    records: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "key", "kind", "action", "contact"}`` per accepted POST, oldest first."""
    url: str = ""
    faults: FaultInjector | None = None
    _failures: deque[_Failure] = field(default_factory=deque)
    _dropped_fields: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    def fail_next(self, status: int, message: str, retry_after: float | None = None) -> None:
        """Answer the next authorized request with ``status`` and ``{"message": message}``."""
        with self._lock:
            self._failures.append(_Failure(status, message, retry_after))

    def drop_field(self, name: str) -> None:
        """From now on a write naming property ``name`` is refused: 400 ``Property <name> does not exist``."""
        with self._lock:
            self._dropped_fields.add(name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _json(401, {"message": "invalid token"})
        with self._lock:
            if self._failures:
                failure = self._failures.popleft()
                headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
                return _json(failure.status, {"message": failure.message}, headers)
        if request.path == "/health":
            return _json(200, {"status": "ok"})
        if request.method == "GET" and request.path.startswith("/actions/"):
            key = request.path[len("/actions/") :]
            with self._lock:
                found = next((r for r in self.records if r["key"] == key), None)
            return _json(200, {"id": found["id"], "object": found["kind"]}) if found else _json(404, {"message": "no"})
        if request.method == "POST" and request.path == "/actions":
            body = json.loads(request.get_data())
            with self._lock:
                missing = sorted(self._dropped_fields & _properties(body["action"]))
                if missing:
                    return _json(400, {"message": f"Property {missing[0]} does not exist"})
                record = {
                    "id": _contact_id(body["action"]) or f"{body['kind']}-{next(self._ids)}",
                    "key": body["key"],
                    "kind": body["kind"],
                    "action": body["action"],
                    "contact": body.get("contact"),
                }
                known = next((r for r in self.records if r["id"] == record["id"]), None)
                if known is not None:  # a number's contact exists once, like in a CRM
                    return _json(200, {"id": known["id"], "object": known["kind"]})
                self.records.append(record)
            return _json(201, {"id": record["id"], "object": record["kind"]})
        return _json(404, {"message": "not found"})

    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        self.faults = install(self._server)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> ActionEndpoint:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _contact_id(action: dict[str, Any]) -> str | None:
    """A resolve_contact's record id: one contact per phone number (its first phone rule)."""
    if action.get("kind") != "resolve_contact":
        return None
    phones = [m["e164"] for m in action.get("match") or [] if m.get("e164")]
    return f"contact-{phones[0]}" if phones else None


def _properties(action: dict[str, Any]) -> set[str]:
    """Property names an action writes: ``properties`` of creates, ``fields[].property`` of contact updates."""
    names = set(action.get("properties") or {})
    names |= {f["property"] for f in action.get("fields") or [] if isinstance(f, dict)}
    return names


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers or {})
