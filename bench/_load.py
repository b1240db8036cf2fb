"""Load generator for bench/ingest.py: raw-socket HTTP/1.1 POSTs, one connection per request.

Two shapes, each spread over several processes (threads inside each) so the clients are not
capped by one interpreter's GIL:

* closed loop: C clients, each sends its next request as soon as the previous one is answered;
* open loop: requests are scheduled at a fixed rate; latency counts from the *scheduled* start,
  so a stalled server is charged for the requests that queue behind it (no coordinated omission).

Every request carries a unique event id, built from a JSON template of the 2X sample payload, whose transcript
has 4 turns; `Target.turns` gives it that many instead (a real call's transcript has dozens).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from connector.sample import sample_payload

ID_PLACEHOLDER = "__BENCH_EVENT_ID__"
SOCKET_TIMEOUT_S = 15.0
LATE_THRESHOLD_S = 0.010
"""An open-loop request that starts more than this after its scheduled time missed its schedule."""


@dataclass(frozen=True)
class Target:
    """Where and how to post (picklable, sent to every load process)."""

    host: str
    port: int
    path: str
    token: str
    turns: int | None = None
    """Transcript turns per body; None keeps the sample's 4."""


TURN_TEXTS = (
    "Hi, this is Sam calling from Northwind Energy about the solar assessment you asked for last week.",
    "Oh, right. I remember filling that form out, but I am a bit busy at the moment.",
    "No problem at all, it only takes two minutes. Are you still the owner of the house on Maple Street?",
    "Yes, we bought it about six years ago, and the roof was replaced in 2021.",
)
"""Sentences of a plausible length (60 to 100 characters), cycled through a long transcript."""


def document(event_id: object, turns: int | None = None) -> dict[str, Any]:
    """The 2X sample payload under `event_id`, with `turns` transcript turns when given."""
    payload = sample_payload(event_id)
    if turns is not None:
        payload["transcript"] = [
            {"role": "Assistant" if i % 2 == 0 else "User", "content": TURN_TEXTS[i % len(TURN_TEXTS)]}
            for i in range(turns)
        ]
    return payload


@dataclass
class Outcome:
    """What one load process saw."""

    statuses: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    late: int = 0
    not_sent: int = 0
    in_window: int = 0
    """Closed loop: requests answered (any status) before the phase's end, for req/s."""
    error_samples: list[str] = field(default_factory=list)

    def add(self, status: str, latency_s: float | None, detail: str = "") -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if latency_s is not None:
            self.latencies_s.append(latency_s)
        if status != "202" and len(self.error_samples) < 5:
            self.error_samples.append(f"{status}: {detail[:300]}")

    def merge(self, other: Outcome) -> None:
        for key, count in other.statuses.items():
            self.statuses[key] = self.statuses.get(key, 0) + count
        self.latencies_s.extend(other.latencies_s)
        self.late += other.late
        self.not_sent += other.not_sent
        self.in_window += other.in_window
        self.error_samples.extend(other.error_samples[: max(0, 10 - len(self.error_samples))])

    @property
    def accepted(self) -> int:
        return self.statuses.get("202", 0)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "202")


class _Requester:
    """Builds and sends the POSTs of one thread; ids are `<prefix>-<n>`, unique per prefix."""

    def __init__(self, target: Target, prefix: str) -> None:
        template = json.dumps(document(ID_PLACEHOLDER, target.turns), separators=(",", ":"))
        self._head, self._tail = template.split(json.dumps(ID_PLACEHOLDER))
        self._target = target
        self._prefix = prefix
        self._seq = 0

    def _request(self) -> bytes:
        self._seq += 1
        body = f'{self._head}"{self._prefix}-{self._seq}"{self._tail}'.encode()
        head = (
            f"POST {self._target.path} HTTP/1.1\r\nHost: {self._target.host}:{self._target.port}\r\n"
            f"Authorization: {self._target.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    def post(self) -> tuple[str, str]:
        """Send one request; return (status code or error class, answer body for diagnostics)."""
        payload = self._request()
        try:
            with socket.create_connection((self._target.host, self._target.port), timeout=SOCKET_TIMEOUT_S) as sock:
                sock.sendall(payload)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            return exc.__class__.__name__, str(exc)
        answer = b"".join(chunks)
        status_line, _, rest = answer.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return "bad_response", answer[:200].decode("latin-1")
        return parts[1].decode("ascii", "replace"), rest.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


def closed_loop(target: Target, prefix: str, threads: int, start_at: float, duration_s: float) -> Outcome:
    """Run `threads` back-to-back clients from `start_at` (time.monotonic) for `duration_s`."""
    outcome = Outcome()
    lock = threading.Lock()
    stop_at = start_at + duration_s

    def client(index: int) -> None:
        requester = _Requester(target, f"{prefix}-t{index}")
        local = Outcome()
        time.sleep(max(0.0, start_at - time.monotonic()))
        while (began := time.monotonic()) < stop_at:
            status, detail = requester.post()
            ended = time.monotonic()
            local.add(status, ended - began, detail)
            local.in_window += ended <= stop_at
        with lock:
            outcome.merge(local)

    _run_threads(client, threads)
    return outcome


def open_loop(
    target: Target, prefix: str, threads: int, start_at: float, duration_s: float, rate: float, slot: int, slots: int
) -> Outcome:
    """Send requests `slot`, `slot+slots`, … of a `rate`/s schedule beginning at `start_at`.

    A dispatcher hands each request to a pool of `threads` senders at its scheduled time; when
    all senders are busy it waits in the queue, and its latency still counts from the schedule.
    """
    outcome = Outcome()
    lock = threading.Lock()
    jobs: queue.Queue[float | None] = queue.Queue()
    total = int(duration_s * rate)
    schedule = [start_at + i / rate for i in range(slot, total, slots)]
    give_up_at = start_at + duration_s + SOCKET_TIMEOUT_S

    def sender(index: int) -> None:
        requester = _Requester(target, f"{prefix}-s{index}")
        local = Outcome()
        while (scheduled := jobs.get()) is not None:
            began = time.monotonic()
            if began > give_up_at:
                local.not_sent += 1
                continue
            if began - scheduled > LATE_THRESHOLD_S:
                local.late += 1
            status, detail = requester.post()
            local.add(status, time.monotonic() - scheduled, detail)
        with lock:
            outcome.merge(local)

    def dispatch() -> None:
        for scheduled in schedule:
            time.sleep(max(0.0, scheduled - time.monotonic()))
            jobs.put(scheduled)
        for _ in range(threads):
            jobs.put(None)

    _run_threads(sender, threads, extra=dispatch)
    return outcome


def _run_threads(work: Any, count: int, extra: Any = None) -> None:
    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    if extra is not None:
        pool.append(threading.Thread(target=extra, daemon=True))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]
