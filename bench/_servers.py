"""The two servers under test, each a gunicorn in its own process group on a free loopback port.

`connector serve` gets a generated config (the run's store, no sinks, default logging); the bare
app gets the same gunicorn options `connector serve` passes to its own gunicorn.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bare_app
from _stores import Store

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PATH = "/webhooks/2x/post-call"
TOKEN = "bench-token-" + os.urandom(12).hex()
TIMEOUT_S = 30
"""gunicorn worker and graceful timeout (the connector's default), and the readiness wait."""


class Server:
    """A gunicorn-based server in its own process group, stopped (SIGTERM, then SIGKILL) on close."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str], port: int) -> None:
        self.name, self.port, self.workdir = name, port, workdir
        self.stderr_path = workdir / f"{name}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = TIMEOUT_S) -> None:
        """Poll GET /readyz until 200; raise with the server's stderr if it exits or never gets ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before ready:\n{self.stderr()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s:\n{self.stderr()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, TIMEOUT_S + 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=wait_s)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        self._stderr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_connector(workdir: Path, workers: int, store: Store) -> Server:
    """`connector serve` with a generated config: the given store, no sinks, default logging."""
    port = free_port()
    (workdir / "connector.yaml").write_text(
        f"receiver:\n  host: {HOST}\n  port: {port}\n  path: {PATH}\n"
        f'  auth: {{header: Authorization, tokens: ["{TOKEN}"]}}\n' + store.connector_store_yaml() + "sinks: {}\n"
    )
    exe = shutil.which("connector") or "connector"
    argv = [exe, "serve", "--config", str(workdir / "connector.yaml"), "--port", str(port), "--workers", str(workers)]
    return Server("connector", argv, workdir, dict(os.environ), port)


def start_bare(workdir: Path, workers: int, store: Store, queued: bool = False) -> Server:
    """bench/bare_app.py on gunicorn with the options `connector serve` passes to its own gunicorn;
    `queued`: its SQLite commits queue for the write lock like the connector's."""
    port = free_port()
    env = {**os.environ, bare_app.TOKEN_ENV: TOKEN, bare_app.PATH_ENV: PATH, bare_app.QUEUE_ENV: "1" if queued else ""}
    if store.kind.is_pg:
        bare_app.init_pg(store.pg_conninfo)
        env[bare_app.PG_ENV] = store.pg_conninfo
    else:
        bare_app.init_db(str(store.sqlite_path))
        env[bare_app.DB_ENV] = str(store.sqlite_path)
        env[bare_app.SYNCHRONOUS_ENV] = store.kind.name.upper()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--pythonpath",
        str(BENCH_DIR),
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        str(TIMEOUT_S),
        "--graceful-timeout",
        str(TIMEOUT_S),
        "--log-level",
        "warning",
        "bare_app:create_app()",
    ]
    return Server("bare", argv, workdir, env, port)


def _host_jiffies() -> tuple[int, int]:
    """(all CPU time, busy CPU time) of the host so far, in clock ticks, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields), sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def host_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over `seconds`, measured before any server starts."""
    try:
        total0, busy0 = _host_jiffies()
        time.sleep(seconds)
        total1, busy1 = _host_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(total1 - total0, 1)


def server_cpu_s(server_pgid: int) -> float | None:
    """CPU seconds used so far by a server's process group (master and workers), from /proc."""
    used = 0
    try:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            if int(fields[2]) == server_pgid:
                used += sum(int(v) for v in fields[11:15])
        return used / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def _own_jiffies(server_pgid: int) -> int:
    """CPU ticks used so far by this script, its load processes and the server's process group."""
    me, used = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
        ppid, pgrp = int(fields[1]), int(fields[2])
        if pgrp == server_pgid:  # master and workers; the master's cutime covers reaped workers
            used += sum(int(v) for v in fields[11:15])
        elif pid == me or ppid == me:
            used += int(fields[11]) + int(fields[12])
    return used


class ForeignCpu:
    """Share of the host's CPU used by *other* processes between start() and stop()."""

    def __init__(self, server_pgid: int) -> None:
        self.pgid = server_pgid
        self.share: float | None = None
        self._start: tuple[int, int, int] | None = None

    def start(self) -> None:
        try:
            self._start = (*_host_jiffies(), _own_jiffies(self.pgid))
        except (OSError, ValueError, IndexError):
            self._start = None

    def stop(self) -> None:
        if self._start is None:
            return
        try:
            total, busy = _host_jiffies()
            own = _own_jiffies(self.pgid)
        except (OSError, ValueError, IndexError):
            return
        total0, busy0, own0 = self._start
        self.share = max(0.0, ((busy - busy0) - (own - own0)) / max(total - total0, 1))
