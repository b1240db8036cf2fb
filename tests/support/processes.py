"""Real `connector` processes for tests: output to a file (a pipe could fill and block the server),
readiness by /readyz, and a stop that never leaves anything running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

CONNECTOR = [sys.executable, "-m", "connector"]


def start(args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `connector ARGS` in its own process group, stdout and stderr appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            CONNECTOR + args,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def readyz(port: int) -> dict[str, Any] | None:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except requests.RequestException:
        return None
    return {"status_code": answer.status_code, **answer.json()}


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 60) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}):\n{log.read_text(errors='replace')}")
        found = readyz(port)
        return found is not None and found["status_code"] == 200

    wait_until(ready, timeout_s, "the server to become ready")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
    """Signal the whole process group; SIGKILL it if it does not exit in time. Returns the exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait(10)


@contextmanager
def serving(
    args: list[str], cwd: Path, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = start(args, cwd, log, env)
    try:
        wait_ready(process, port, log)
        yield process
    finally:
        stop(process)
