"""Webhook payloads and the poster for bench/delivery.py.

Events get unique integer ids, a phone number from a pool of PHONE_POOL leads (so some contacts
are called again, as in a campaign) and end reasons cycling like tests/test_worker_processes.py
`ingest_many`. The poster sends them as fast as the receiver takes them from several threads and
records, per event, the wall-clock time (`time.time()`) its 202 was read.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from connector.sample import sample_payload

REASONS = ["call_transferred", "schedule_call_back", "no_answer", "hung_up", "do_not_call"]
ORDINARY = [r for r in REASONS if r != "do_not_call"]
PHONE_POOL = 1000
DNC_PHONE = "+12025559876"
"""Outside the pool: the do-not-call lead has no delivery of its own in the backlog."""
POST_THREADS = 8
POST_TIMEOUT_S = 30.0


def phone(i: int) -> str:
    return f"+1202555{i % PHONE_POOL:04d}"


def event(event_id: int, i: int, *, reasons: list[str] = REASONS) -> dict[str, Any]:
    """The 2X sample with this id, the i-th phone number of the pool and the i-th end reason."""
    return sample_payload(event_id, end_reason=reasons[i % len(reasons)], record_phone_number=phone(i))


@dataclass
class Posted:
    """What the poster saw."""

    acks: dict[int, float] = field(default_factory=dict)
    """event id → wall-clock time its 202 was read."""
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def add(self, status: str, detail: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != "202" and len(self.errors) < 5:
            self.errors.append(f"{status}: {detail[:300]}")


def post(port: int, path: str, token: str, document: dict[str, Any]) -> tuple[str, str, float]:
    """POST one webhook; returns (status or error class, answer body, time.time() when read)."""
    body = json.dumps(document).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=POST_TIMEOUT_S)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": token, "Content-Type": "application/json"})
        answer = conn.getresponse()
        text = answer.read().decode("utf-8", "replace")
        return str(answer.status), text, time.time()
    except OSError as exc:
        return exc.__class__.__name__, str(exc), time.time()
    finally:
        conn.close()


def post_all(
    port: int,
    path: str,
    token: str,
    documents: list[dict[str, Any]],
    threads: int = POST_THREADS,
    deadline: float | None = None,
) -> Posted:
    """Post every document once, `threads` at a time; stops early at `deadline` (time.monotonic)."""
    result = Posted(started=time.time())
    lock = threading.Lock()
    cursor = iter(range(len(documents)))

    def sender() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None or (deadline is not None and time.monotonic() > deadline):
                return
            status, detail, at = post(port, path, token, documents[index])
            with lock:
                result.add(status, detail)
                if status == "202":
                    result.acks[int(documents[index]["id"])] = at

    pool = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    result.ended = time.time()
    return result
