"""Memory benchmark: resident memory of the receiver and of the delivery worker as events flow through.

`python bench/memory.py [--events 100000] [--deliver 20000]` starts the real `connector serve`
(SQLite, no embedded worker) and posts EVENTS webhooks, sampling the RSS of every gunicorn worker
every 10 % of the way; then it runs the real delivery worker in this process against a loopback
stand-in CRM for DELIVER of them, sampling its RSS the same way. Flat means no per-event growth:
the table prints the growth per 1,000 events between the first and last tenth.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml
from _common import machine, note  # noqa: E402

from connector.default_mappings import default_mapping_path  # noqa: E402
from connector.sample import sample_payload  # noqa: E402

TOKEN = "bench-memory-token-" + "x" * 16


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class _Crm(BaseHTTPRequestHandler):
    """Accepts every action (the `http` sink's contract) and answers at once."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small keep-alive answers would otherwise wait for delayed ACKs (~40 ms)
    counter = 0

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Crm.counter += 1
        self._answer(201, {"id": str(_Crm.counter)})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(404 if self.path.startswith("/actions/") else 200, {})

    def log_message(self, *args: object) -> None:
        pass


def receiver_phase(workdir: Path, events: int) -> list[tuple[int, int]]:
    port = 18700 + os.getpid() % 200
    config = workdir / "memory.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"tokens": [TOKEN]}},
                "store": {"url": "sqlite:///memory.db"},
                "serve": {"workers": 2},
                "logging": {"level": "WARNING"},
                "sinks": {},
            }
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--config", str(config)],
        cwd=workdir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[int, int]] = []
    try:
        url = f"http://127.0.0.1:{port}/webhooks/2x/post-call"
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        session = requests.Session()
        step = max(1, events // 10)
        lock = threading.Lock()

        def post(i: int) -> None:
            answer = session.post(
                url,
                json=sample_payload(i + 1, record_phone_number=f"+1202{5550000 + i % 9999:07d}"),
                headers={"Authorization": TOKEN},
                timeout=10,
            )
            if answer.status_code != 202:
                raise RuntimeError(f"answer {answer.status_code}")

        with ThreadPoolExecutor(8) as pool:
            for start in range(0, events, step):
                list(pool.map(post, range(start, min(events, start + step))))
                with lock:
                    samples.append((min(events, start + step), sum(rss_kib(p) for p in children(server.pid))))
                note(f"receiver: {samples[-1][0]} events, workers' RSS {samples[-1][1] / 1024:.1f} MiB")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return samples


def delivery_phase(workdir: Path, count: int) -> list[tuple[int, int]]:
    from connector.config import parse_settings
    from connector.engine.worker import Worker
    from connector.ledger import Ledger

    crm = ThreadingHTTPServer(("127.0.0.1", 0), _Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    settings = parse_settings(
        {
            "receiver": {"auth": {"tokens": [TOKEN]}},
            "store": {"url": f"sqlite:///{workdir / 'memory.db'}"},
            "sinks": {
                "crm": {
                    "type": "http",
                    "url": f"http://127.0.0.1:{crm.server_port}",
                    "mapping": str(default_mapping_path("hubspot")),
                }
            },
            "worker": {"batch_size": 100},
            "logging": {"level": "WARNING"},
        },
        source="bench",
        base_dir=workdir,
        environ={},
    )
    ledger = Ledger.open(settings.store)
    ids = [
        row[0]
        for row in ledger.engine.connect().exec_driver_sql(
            f"SELECT event_id FROM events ORDER BY received_at LIMIT {count}"
        )
    ]
    for event_id in ids:
        ledger.deliveries.add_missing(event_id, ["crm"], 10)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    samples: list[tuple[int, int]] = []
    done, step = 0, max(1, len(ids) // 10)
    while done < len(ids):
        done += worker.run_once()
        if done >= (len(samples) + 1) * step or done >= len(ids):
            samples.append((done, rss_kib(os.getpid())))
            note(f"worker: {done} delivered, RSS {samples[-1][1] / 1024:.1f} MiB")
    worker.close()
    crm.shutdown()
    return samples


def growth_per_1000(samples: list[tuple[int, int]]) -> float:
    (first_n, first_kib), (last_n, last_kib) = samples[0], samples[-1]
    return (last_kib - first_kib) / max(1, last_n - first_n) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--deliver", type=int, default=20_000)
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        receiver = receiver_phase(Path(folder), args.events)
        worker = delivery_phase(Path(folder), min(args.deliver, args.events))
    print(f"memory benchmark  ({info['date_utc']}, {info['cpu']}, {info['cores']} cores, Python {info['python']})")
    print(f"command: {info['command']}")
    print("process                  events   RSS first 10%   RSS at end   growth per 1,000 events")
    print(
        f"receiver (2 workers)  {receiver[-1][0]:>9}   {receiver[0][1] / 1024:>10.1f} MiB   {receiver[-1][1] / 1024:>7.1f} MiB"
        f"   {growth_per_1000(receiver):>8.1f} KiB"
    )
    print(
        f"delivery worker       {worker[-1][0]:>9}   {worker[0][1] / 1024:>10.1f} MiB   {worker[-1][1] / 1024:>7.1f} MiB"
        f"   {growth_per_1000(worker):>8.1f} KiB"
    )
    print(f"(max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
