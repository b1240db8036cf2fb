"""CRM stand-in for bench/delivery.py: the `http` sink's endpoint contract, lean, with a rate limit.

Run as its own process (so the benchmark's load threads do not share its GIL):

    python bench/_delivery_crm.py --port P --token T --rate R --window W

It answers the contract of connector/sinks/http.py (POST /actions, GET /actions/{key},
GET /health), modelled on tests/support/recorder.py, and

* enforces R requests per sliding window of W seconds over *every* authenticated request,
  answering 429 with a Retry-After that says when the oldest counted request leaves the window;
* records the wall-clock arrival (`time.time()`) of every accepted request and of every write,
  per action key, and counts the 429s.

Bench-only routes (no auth, not rate limited): GET /_bench/stats (everything recorded, JSON),
GET /_bench/count (writes so far), GET /_bench/key/{key} (arrival time of a key's first write).
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


class CrmState:
    """Everything the stand-in knows, behind one lock."""

    def __init__(self, token: str, rate: int | None, window_s: float) -> None:
        self.token = token
        self.rate = rate
        self.window_s = window_s
        self.lock = threading.Lock()
        self.window: deque[float] = deque()
        self.accepted: list[float] = []
        self.rejected: list[float] = []
        self.writes: dict[str, list[float]] = {}
        self.ids: dict[str, str] = {}
        self.write_count = 0
        self._seq = itertools.count(1)

    def admit(self) -> float | None:
        """Count one request against the limit: None when admitted, else seconds until it would be."""
        now = time.time()
        with self.lock:
            if self.rate is not None:
                while self.window and now - self.window[0] >= self.window_s:
                    self.window.popleft()
                if len(self.window) >= self.rate:
                    self.rejected.append(now)
                    return max(0.01, self.window[0] + self.window_s - now)
                self.window.append(now)
            self.accepted.append(now)
        return None

    def write(self, body: dict[str, Any]) -> tuple[str, str]:
        """Record one write (a CRM that does not deduplicate); returns (id, object)."""
        now = time.time()
        kind = body["kind"]
        with self.lock:
            record_id = f"{kind}-{next(self._seq)}"
            if kind == "resolve_contact":  # one contact per phone number, like a CRM lookup
                phones = [m.get("e164") for m in body["action"].get("match", []) if m.get("e164")]
                record_id = f"contact-{phones[0]}" if phones else record_id
            self.writes.setdefault(body["key"], []).append(now)
            self.ids.setdefault(body["key"], record_id)
            self.write_count += 1
        return record_id, "contact" if kind == "resolve_contact" else kind

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "rate": self.rate,
                "window_s": self.window_s,
                "accepted": list(self.accepted),
                "rejected": list(self.rejected),
                "writes": {k: list(v) for k, v in self.writes.items()},
            }


class Handler(BaseHTTPRequestHandler):
    """One request; HTTP/1.1 keep-alive so the sink's requests.Session reuses its connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive answers stall on delayed ACKs (~40 ms each)
    state: CrmState  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/_bench/"):
            return self._bench()
        if not self._allowed():
            return None
        if self.path == "/health":
            return self._json(200, {"status": "ok"})
        if self.path.startswith("/actions/"):
            key = unquote(self.path[len("/actions/") :])
            with self.state.lock:
                found = self.state.ids.get(key)
            return self._json(200, {"id": found}) if found else self._json(404, {"message": "no such key"})
        return self._json(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._allowed():
            return
        if self.path != "/actions":
            return self._json(404, {"message": "not found"})
        record_id, kind = self.state.write(json.loads(body))
        self._json(201, {"id": record_id, "object": kind})

    def _allowed(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._json(401, {"message": "invalid token"})
            return False
        wait_s = self.state.admit()
        if wait_s is not None:
            self._json(429, {"message": "rate limit"}, {"Retry-After": f"{wait_s:.3f}"})
            return False
        return True

    def _bench(self) -> None:
        if self.path == "/_bench/stats":
            return self._json(200, self.state.stats())
        if self.path == "/_bench/count":
            with self.state.lock:
                return self._json(200, {"writes": self.state.write_count, "rejected": len(self.state.rejected)})
        if self.path.startswith("/_bench/key/"):
            with self.state.lock:
                times = self.state.writes.get(unquote(self.path[len("/_bench/key/") :]))
            return self._json(200, {"at": times[0]}) if times else self._json(404, {"at": None})
        return self._json(404, {"message": "not found"})

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)  # headers are buffered until end_headers: one write, then the body
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def serve(host: str, port: int, state: CrmState) -> ThreadingHTTPServer:
    """A threaded server bound to host:port (not yet serving)."""
    handler = type("BoundHandler", (Handler,), {"state": state})
    return _Server((host, port), handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=int, default=None, help="requests per window (none: unlimited)")
    parser.add_argument("--window", type=float, default=10.0, help="window in seconds")
    args = parser.parse_args()
    server = serve(args.host, args.port, CrmState(args.token, args.rate, args.window))
    signal.signal(signal.SIGTERM, _stop)
    print(f"crm stand-in on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
