"""A loopback HTTP endpoint for the `http` sink that records every write, with fault knobs.

It behaves like a CRM that does NOT deduplicate: writing the same key twice creates two records,
so `duplicates()` counts exactly the double writes the delivery engine must never make.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Write:
    key: str
    kind: str
    action: dict[str, Any]
    contact: str | None
    at: float
    id: str


@dataclass
class Recorder:
    """State and knobs; `url` once started."""

    token: str = "recorder-token"
    rate_limit: int | None = None
    rate_window_s: float = 10.0
    slow_s: float = 0.0
    slow_requests: int | None = None
    """How many requests `slow_s` delays, from the next one on (None: every request)."""
    writes: list[Write] = field(default_factory=list)
    rejected_429: int = 0
    request_times: list[float] = field(default_factory=list)
    _failures: deque[tuple[int, float | None, str | None]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _window: deque[float] = field(default_factory=deque)
    url: str = ""

    def fail_next(
        self, n: int = 1, status: int = 503, retry_after: float | None = None, body: str | None = None
    ) -> None:
        """The next `n` requests get `status`; `body`: a plain-text answer instead of the JSON message."""
        with self._lock:
            self._failures.extend([(status, retry_after, body)] * n)

    def by_key(self) -> dict[str, list[Write]]:
        with self._lock:
            grouped: dict[str, list[Write]] = {}
            for write in self.writes:
                grouped.setdefault(write.key, []).append(write)
            return grouped

    def duplicates(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.by_key().items() if len(v) > 1}

    def keys(self) -> set[str]:
        return set(self.by_key())

    def max_in_any_window(self) -> int:
        """The most accepted requests seen in any sliding window of rate_window_s (rate budget check)."""
        with self._lock:
            times = sorted(self.request_times)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= self.rate_window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- the WSGI app ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._handle(request)(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _json(401, {"message": "invalid token"})
        with self._lock:
            now = time.monotonic()
            if self._failures:
                status, retry_after, body = self._failures.popleft()
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                if body is not None:
                    return Response(body, status=status, content_type="text/plain; charset=utf-8", headers=headers)
                return _json(status, {"message": f"injected {status}"}, headers)
            if self.rate_limit is not None:
                while self._window and now - self._window[0] >= self.rate_window_s:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit:
                    self.rejected_429 += 1
                    return _json(429, {"message": "rate limit"}, {"Retry-After": "1"})
                self._window.append(now)
            self.request_times.append(now)
            delay = self.slow_s if self.slow_requests is None or self.slow_requests > 0 else 0.0
            if delay and self.slow_requests is not None:
                self.slow_requests -= 1
        if delay:
            time.sleep(delay)
        if request.path == "/health":
            return _json(200, {"status": "ok"})
        if request.method == "GET" and request.path.startswith("/actions/"):
            key = request.path[len("/actions/") :]
            found = self.by_key().get(key)
            return _json(200, {"id": found[0].id}) if found else _json(404, {"message": "no such key"})
        if request.method == "POST" and request.path == "/actions":
            body = json.loads(request.get_data())
            if body["action"].get("properties", {}).get("reject_me"):
                return _json(400, {"message": "Property reject_me does not exist"})
            with self._lock:
                record_id = f"{body['kind']}-{next(self._ids)}"
                if body["kind"] == "resolve_contact":  # one contact per phone number, like a CRM lookup
                    phones = [m.get("e164") for m in body["action"].get("match", []) if m.get("e164")]
                    record_id = f"contact-{phones[0]}" if phones else record_id
                write = Write(body["key"], body["kind"], body["action"], body.get("contact"), time.time(), record_id)
                self.writes.append(write)
            return _json(
                201, {"id": write.id, "object": "contact" if body["kind"] == "resolve_contact" else body["kind"]}
            )
        return _json(404, {"message": "not found"})

    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers or {})
