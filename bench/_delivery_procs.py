"""Processes and stores for bench/delivery.py: each child in its own process group, stopped for sure.

`Procs` owns every child it starts (the CRM stand-in, `connector serve`, `connector worker`s) and
stops them all — SIGTERM to the group, then SIGKILL — however the run ends. PostgreSQL databases
are created per configuration and dropped (WITH (FORCE)) at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import yaml

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WEBHOOK_PATH = "/webhooks/2x/post-call"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
STOP_WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_json(port: int, method: str, path: str, timeout_s: float = 30.0) -> tuple[int, Any]:
    """One loopback request; returns (status, decoded JSON body or None)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None
    finally:
        conn.close()


class Proc:
    """A child process in a new session (its own process group), output to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.log_path = name, log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env or dict(os.environ),
            start_new_session=True,
            cwd=log_path.parent,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system) the process has used so far; None once it is gone."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, wait_s: float = STOP_WAIT_S) -> int | None:
        """SIGTERM the group, SIGKILL it if still there after wait_s; returns the exit code."""
        for sig, timeout in ((signal.SIGTERM, wait_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)  # also reaches children left behind by a dead leader
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=timeout)
                if sig is signal.SIGTERM:
                    break
            except subprocess.TimeoutExpired:
                continue
        if not self._log.closed:
            self._log.close()
        return self.proc.poll()


class Procs:
    """Starts and always stops the children of one configuration."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []
        self.exit_codes: dict[str, int | None] = {}

    def start(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.workdir / f"{name}.log")
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):  # workers and receiver first, the CRM stand-in last
            self.exit_codes[proc.name] = proc.stop()
        self.started.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


def connector_argv(*args: str) -> list[str]:
    exe = shutil.which("connector")
    return [exe, *args] if exe else [sys.executable, "-m", "connector", *args]


def start_crm(procs: Procs, token: str, rate: int, window_s: float) -> int:
    """The CRM stand-in on a free port; returns the port once it answers."""
    port = free_port()
    proc = procs.start(
        "crm",
        [
            sys.executable,
            str(BENCH_DIR / "_delivery_crm.py"),
            "--port",
            str(port),
            "--token",
            token,
            "--rate",
            str(rate),
            "--window",
            str(window_s),
        ],
    )
    wait_http(proc, port, "/_bench/count")
    return port


def wait_http(proc: Proc, port: int, path: str, timeout_s: float = 30.0) -> None:
    """Poll GET path until 200; raise with the process output if it dies or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode}) before ready:\n{proc.output()[-3000:]}")
        try:
            if http_json(port, "GET", path, timeout_s=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready on {path} after {timeout_s} s:\n{proc.output()[-3000:]}")


def write_config(
    path: Path,
    *,
    store_url: str,
    port: int,
    webhook_token: str,
    crm_port: int,
    crm_token: str,
    rate: int,
    window_s: float,
) -> Path:
    """A connector config: receiver on `port`, one http sink at the stand-in, no embedded worker."""
    from connector.default_mappings import default_mapping_path

    document = {
        "receiver": {
            "host": HOST,
            "port": port,
            "path": WEBHOOK_PATH,
            "auth": {"header": "Authorization", "tokens": [webhook_token]},
        },
        "store": {"url": store_url},
        "worker": {"embedded": False},
        "logging": {"level": "WARNING"},
        "sinks": {
            "crm": {
                "type": "http",
                "url": f"http://{HOST}:{crm_port}",
                "headers": {"Authorization": f"Bearer {crm_token}"},
                "mapping": str(default_mapping_path("hubspot")),
                "rate_limit": {"requests": rate, "window_s": window_s},
            }
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def migrate(config: Path, workdir: Path) -> None:
    """`connector migrate` once, so workers and receiver never race to create the schema."""
    done = subprocess.run(
        connector_argv("migrate", "--config", str(config)),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"connector migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def start_workers(procs: Procs, config: Path, count: int, first: int = 0) -> list[Proc]:
    return [procs.start(f"worker{first + i}", connector_argv("worker", "--config", str(config))) for i in range(count)]


def start_receiver(procs: Procs, config: Path, port: int, ready_path: str = "/readyz") -> Proc:
    """`connector serve` (gunicorn); waits until ready_path answers 200."""
    proc = procs.start("receiver", connector_argv("serve", "--config", str(config)))
    wait_http(proc, port, ready_path, timeout_s=60)
    return proc


def pg_create(name: str) -> str:
    """Create database `name`; returns its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
