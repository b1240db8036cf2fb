"""Runs the receiver on gunicorn (pre-forking, production grade) from inside `connector serve`,
plus the embedded delivery worker in a process of its own, supervised by the gunicorn master.

The schema is migrated once in the master before any worker forks; each worker then builds its
own app and engine, because database connections must never cross a fork. Before that, the
sinks are checked (connector.ops.preflight): a sink no worker could build stops `serve` before it
accepts anything.

Supervision: a thread of the master blocks in `waitpid` on the delivery worker's pid, so it sees
the worker end whatever ended it (gunicorn's master also reaps children, with `waitpid(-1)` on
SIGCHLD: polling `is_alive()` never saw the death). It records why in the store (for /readyz and
`connector status`) and starts a new worker after a backoff that grows while it keeps dying.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from connector.app import create_app
from connector.config import Settings
from connector.engine.process import EXIT_CONFIG
from connector.errors import ConfigError, ConfigProblem, ConnectorError, StoreError
from connector.ledger import Ledger
from connector.logs import setup_logging
from connector.metrics import MULTIPROC_ENV
from connector.receiver.ingest import warm_up

log = logging.getLogger(__name__)

WORKER_BOOT_ERROR = 3
"""gunicorn's exit status for a worker that could not load its app: the master then halts ("failed to boot")."""


class ReceiverServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose workers each call the app factory with the given settings.

    The master speaks for the whole server: the start-up block once it listens, then one line per stage
    of a shutdown ("draining…", "stopped"); per-process start-up logs are debug-level.
    """

    def __init__(self, settings: Settings, *, host: str, port: int, workers: int, block: str = "") -> None:
        self.settings = settings
        self.options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
            "timeout": settings.serve.timeout_s,
            "graceful_timeout": settings.serve.timeout_s,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "connector-receiver",
            "when_ready": self._when_ready,
            "post_worker_init": _receiver_signals,
            "on_exit": self._on_exit,
        }
        self._block = block
        self._delivery: DeliveryProcess | None = None
        self._draining = False
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def _when_ready(self, arbiter: Any) -> None:
        """Listening: start the delivery worker, say so once, and announce a shutdown when a signal asks for one."""
        if self.settings.worker.embedded and self.settings.enabled_sinks():
            self._delivery = DeliveryProcess(self.settings)
            self._delivery.start()
        if self._block:
            print(self._block, flush=True)
        # Ctrl-C drains like SIGTERM: gunicorn's own SIGINT is a quick stop that exits receivers mid-request
        # (a traceback per request in flight); SIGQUIT stays the quick stop.
        arbiter.handle_int = self._announcing(arbiter.handle_term)
        for name in ("handle_term", "handle_quit"):
            setattr(arbiter, name, self._announcing(getattr(arbiter, name)))

    def _announcing(self, handler: Any) -> Any:
        """gunicorn's own signal handler, after one "draining" line (the master dispatches signals by name)."""

        def handle() -> None:
            if not self._draining:
                self._draining = True
                say("draining: finishing requests in flight and the delivery in hand…")
                if self._delivery is not None:
                    # Ctrl-C reaches the worker too; shutting down the receivers can outlast the first restart
                    # delay, and a worker that ended now must not be restarted.
                    self._delivery.no_more_restarts()
            handler()

        return handle

    def _on_exit(self, _arbiter: Any) -> None:
        if self._delivery is not None:
            self._delivery.stop()
        say("stopped")

    def load(self) -> Flask:
        """Each receiver process's app. The master checked everything it could; a failure left for here (e.g. the
        store gone since) is one `Error:` line and gunicorn's "failed to boot" exit, which stops the server."""
        setup_logging(self.settings.logging)
        try:
            return create_app(self.settings, ledger=Ledger.open(self.settings.store, migrate_schema=False))
        except ConnectorError as exc:
            print(f"Error: {exc}", file=sys.stderr, flush=True)
            sys.exit(WORKER_BOOT_ERROR)


def _receiver_signals(worker: Any) -> None:
    """In each receiver, once gunicorn has set its signal handlers: Ctrl-C drains, and the master's death stops it."""
    _interrupt_drains(worker)
    _exit_with_master(worker)


def _exit_with_master(worker: Any) -> None:
    """SIGTERM (finish the request in hand, then exit) as soon as the master dies.

    gunicorn's own check ("parent changed") runs only between requests, every `timeout`/2 s at most: after a
    `kill -9` of the master its receivers kept the port for about 14 s, so an immediate restart of `serve`
    failed with "port already in use" while the orphans went on answering 202. Linux's PR_SET_PDEATHSIG
    (prctl(2)) signals the child when the thread that forked it (the master's main thread) ends. Elsewhere
    gunicorn's own check stays the only one."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
        return
    if os.getppid() != worker.ppid:  # the master died before the call above: no signal will come
        worker.alive = False


_PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


def _interrupt_drains(worker: Any) -> None:
    """In each receiver: SIGINT (Ctrl-C reaches the whole process group) finishes the request in hand, like
    SIGTERM, instead of gunicorn's ``sys.exit`` from inside the request."""
    signal.signal(signal.SIGINT, worker.handle_exit)


def say(line: str) -> None:
    """One line of `serve`'s own, on stderr beside the logs (the master configures no logging of its own)."""
    print(f"connector serve: {line}", file=sys.stderr, flush=True)


def config_problems(settings: Settings, sinks: list[str] | None = None) -> list[ConfigProblem]:
    """What `serve` refuses in a config its model accepts: a sink no worker could build (of `sinks`, default the
    enabled ones; see connector.ops.preflight) and a dashboard password equal to a webhook token. `validate` asks
    the same, so it never says OK to a config `serve` then refuses."""
    from connector.dashboard.blueprint import password_problems
    from connector.ops.preflight import sink_problems

    return sink_problems(settings, sinks) + password_problems(settings, settings.dashboard)


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    extra_lines: list[str] | None = None,
) -> None:
    """Check everything that can stop a start (sinks and mappings, the port, the store), migrate the store,
    then serve until SIGTERM/SIGINT (gunicorn finishes in-flight requests). A check that fails raises a
    ConnectorError whose message says what to change (the CLI prints it as one `Error:`; no traceback).

    Counters of every process (gunicorn workers, the delivery worker) meet in a fresh
    prometheus multiprocess directory, so `/metrics` sums them whichever worker answers.
    """
    from connector.mapping.sinks import load_sink_mappings
    from connector.ops.startup import (
        StartupError,
        check_port,
        check_store_path,
        plaintext_sink_urls,
        startup_block,
        store_exposure,
        store_failure,
    )
    from connector.sink_health import assess

    host = host or settings.receiver.host
    port = settings.receiver.port if port is None else port
    workers = settings.serve.workers if workers is None else workers
    if workers < 1:  # as `serve.workers` in the config: 0 must not quietly become the config's value
        raise StartupError(f"at least 1 receiver process is needed, not {workers}: `--workers` or `serve.workers`")
    problems = config_problems(settings)  # also without the embedded worker: the same config feeds `connector worker`
    if problems:
        raise ConfigError(settings.source, problems)
    load_sink_mappings(settings)
    check_port(host, port)
    check_store_path(settings.store)
    try:
        ledger = Ledger.open(settings.store)
    except StoreError as exc:
        raise store_failure(settings.store, exc) from None
    try:
        sinks = assess(ledger, settings).sinks
    except StoreError as exc:
        raise store_failure(settings.store, exc) from None
    finally:
        ledger.dispose()
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="connector-metrics-")
        from prometheus_client import values

        # prometheus-client picks its value storage when first imported (already done here):
        # switch it to the shared-file kind before any worker creates a metric.
        values.ValueClass = values.get_value_class()
    warm_up(settings.phone.default_region)  # before the fork: the workers inherit what it loaded
    warnings = [w for w in [store_exposure(settings.store), *plaintext_sink_urls(settings)] if w]
    extra = (extra_lines or []) + [f"  Warning     : {warning}" for warning in warnings]
    block = startup_block(settings, host=host, port=port, workers=workers, sinks=sinks, extra=extra)
    ReceiverServer(settings, host=host, port=port, workers=workers, block=block).run()


class DeliveryProcess:
    """The embedded delivery worker: its own process, restarted whatever ends it, stopped with SIGTERM."""

    RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    """Waits before each restart while the worker keeps dying; back to the first after HEALTHY_S."""
    HEALTHY_S = 60.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="delivery-supervisor", daemon=True)
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._supervisor.start()

    def _spawn(self) -> None:
        process = subprocess.Popen([sys.executable, "-m", "connector.engine.process"], stdin=subprocess.PIPE)
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(pickle.dumps(self._settings))
        self._process = process

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            status = _wait_for_exit(process)
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started >= self.HEALTHY_S else failures + 1
            delay = self.RESTART_DELAYS_S[min(max(failures, 1), len(self.RESTART_DELAYS_S)) - 1]
            # Wait first: on Ctrl-C the whole process group gets SIGINT, and the master's own
            # shutdown (which sets _stopping) follows within moments; no restart, no noise then.
            if self._stopping.wait(delay):
                return
            reason = f"{describe_exit(status)}; restarted after {delay:g} s (restart {self.restarts + 1})"
            log.error("embedded delivery worker (pid %s) %s", process.pid, reason)
            self._record(process.pid, reason)
            self.restarts += 1
            try:
                self._spawn()
            except OSError as exc:  # e.g. out of memory: the loop sees the old, reaped process and retries
                log.error("could not start the embedded delivery worker: %s", exc.__class__.__name__)

    def _record(self, pid: int, reason: str) -> None:
        """Mark the dead worker stopped with why: /readyz and `connector status` show it, and its
        claims return at once. A short-lived engine: the master forks, connections must not cross."""
        try:
            ledger = Ledger.open(self._settings.store, migrate_schema=False)
        except Exception:  # noqa: BLE001 - the store may be the reason; the next worker will tell
            return
        try:
            ledger.sinks.process_exited(pid, reason, worker_prefix="embedded")
        except Exception:  # noqa: BLE001 - same: recording why is best effort
            log.warning("could not record why the embedded worker exited (store unavailable)")
        finally:
            ledger.dispose()

    def no_more_restarts(self) -> None:
        """The server is shutting down: whatever ends the worker from now on, it is not restarted."""
        self._stopping.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: the worker finishes the delivery in hand and releases the rest."""
        self._stopping.set()
        process = self._process
        if process is None or process.returncode is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        if self._supervisor.is_alive():
            self._supervisor.join(timeout_s)  # it reaps the worker and returns, seeing _stopping
        else:
            _wait_for_exit(process)
        if process.returncode is None and _pid_exists(process.pid):
            process.kill()


def _wait_for_exit(process: subprocess.Popen[bytes]) -> int | None:
    """Block until the process ends; its wait status, or None when gunicorn reaped it first."""
    try:
        _, status = os.waitpid(process.pid, 0)
    except ChildProcessError:
        process.returncode = -1
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode


def describe_exit(code: int | None) -> str:
    """Why a worker process ended, in words."""
    if code is None:
        return "ended (exit status not available)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    if code == EXIT_CONFIG:
        return "could not start: its configuration cannot work (see its error)"
    return f"exited with status {code}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
