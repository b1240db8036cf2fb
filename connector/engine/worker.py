"""The delivery worker loop: claim due deliveries, run them, keep leases alive, recover dead workers'
work, probe paused sinks, and stop cleanly on SIGTERM.

Run embedded by `connector serve` or as `connector worker` (several at once against PostgreSQL).

Liveness: a thread heartbeats every HEARTBEAT_S and renews the leases in hand, independent of a
long CRM call, so a slow worker never looks dead. A worker silent for DEAD_AFTER_S, stopped, or
(on the same host) whose process is gone is dead: its claims return at once; leases expiring stay
the safety net. After its own store outage a worker judges others only by the definite signs
until it has been back for DEAD_AFTER_S (during the outage everyone's heartbeat went stale).

Store outages: any StoreError pauses the loop with a capped backoff, logged once, and the worker
resumes when the store is back, giving back whatever it held when the store went away.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from connector.config import Settings
from connector.engine.batch import BatchingRunner
from connector.engine.ratebudget import make_gate
from connector.engine.single import SinkRuntime
from connector.errors import AuthError, ConfigError, ConnectorError, SinkError, StoreError
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.deliveries import Claimed
from connector.ledger.retention import PurgeCounts, cutoff
from connector.ledger.schema import DeliveryOutcome, DeliveryStatus
from connector.mapping.loader import load_mapping
from connector.mapping.sinks import load_sink_mappings, mapping_path
from connector.metrics import CountersServer, Metrics, process_metrics
from connector.sinks.registry import build_sink_with_abilities

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
DEAD_AFTER_S = 4 * HEARTBEAT_S
"""A worker whose heartbeat is older than this is dead (four missed beats: never a slow one)."""
SWEEP_S = 10.0
"""How often expired leases are swept (the safety net behind heartbeats)."""
STORE_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)
"""Waits between attempts while the store is unavailable; the last one repeats."""
FORGET_STOPPED_S = 7 * 86_400.0
MAPPING_CHECK_S = 2.0
"""How often a worker checks whether a mapping file changed on disk."""
PURGE_FIRST_S = 60.0
"""A worker's first retention purge waits this long after its start: starting up is busy enough."""
PURGE_EVERY_S = 3600.0
"""How often a worker purges personal data past `store.retention_days` (every worker does; purging is idempotent)."""
PURGE_AGAIN_S = 1.0
"""When a purge stopped at its batch limit with more to do: the next part comes this soon, deliveries in between."""
PURGE_BATCHES = 20
"""Write transactions (of connector.ledger.retention.BATCH rows) per purge step: about a tenth of a second of store
work (`python bench/retention.py`), so a first purge of a years-old store never holds up a do-not-call."""


class Worker:
    """One delivery worker process (use several for scale-out)."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        """The counters attempts increment; None: this process's own (see connector.metrics.process_metrics)."""
        self.ledger = ledger or Ledger.open(settings.store)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_requested = threading.Event()
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        self._unrenewed: set[int] = set()
        """Held claims the last renewal did not find leased to this worker (see _renew_held)."""
        self._runtimes: dict[str, SinkRuntime] = {}
        self._runner: BatchingRunner | None = None
        self._last_sweep = 0.0
        self._last_dead_check = 0.0
        self._last_reload = time.monotonic()
        self._next_purge = time.monotonic() + PURGE_FIRST_S
        self._broken_mappings: dict[str, str] = {}
        """Sink → sha256 of its mapping file's content that does not load (reported once per change)."""
        self._mapping_checked = False
        self._store_ok_since: float | None = time.monotonic()
        """When the store last came back (monotonic); None while this worker cannot reach it."""
        self._parent_pid = os.getppid()
        self.exit_when_orphaned = False
        """Embedded worker: stop when the `serve` that started it is gone (killed with SIGKILL)."""

    # -- lifecycle --------------------------------------------------------------------------------

    def open(self) -> None:
        """Load mappings and open every enabled sink (a mapping error stops the start: fix it first)."""
        mappings = load_sink_mappings(self.settings)
        worker_settings = self.settings.worker
        for name, mapping in mappings.items():
            config = self.settings.sinks[name]
            sink, abilities = build_sink_with_abilities(name, config)
            limit = config.rate_limit
            requests = limit.requests if limit else sink.capabilities.requests_per_window
            window = limit.window_s if limit else sink.capabilities.window_s
            sink.open(make_gate(self.ledger, name, requests, window, worker_settings.redis_url))
            self._runtimes[name] = SinkRuntime(sink, mapping, abilities)
        self._runner = BatchingRunner(
            self.ledger,
            self.id,
            self._runtimes,
            worker_settings.retry,
            auth_probe_s=worker_settings.auth_probe_s,
            contact_cache_s=worker_settings.contact_cache_s,
            metrics=self.metrics or process_metrics()[0],
            on_finished=self._finished,
        )
        try:
            self.ledger.sinks.heartbeat(self.id)
        except StoreError:
            pass  # the liveness thread heartbeats as soon as the store answers
        # The embedded worker's start is in `serve`'s start-up block; a standalone one says it here.
        log.log(
            logging.DEBUG if self.exit_when_orphaned else logging.INFO,
            "worker started",
            extra={"worker": self.id, "sinks": sorted(self._runtimes)},
        )

    def close(self) -> None:
        for runtime in self._runtimes.values():
            try:
                runtime.sink.close()
            except Exception:  # noqa: BLE001 - closing must not mask the reason we stop
                log.exception("closing a sink failed")
        try:
            self.ledger.sinks.worker_stopped(self.id)
        except ConnectorError:
            pass

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the delivery in hand, release the rest, exit."""
        _stop_on_signals(self.stop_requested)

    def run_forever(self) -> None:
        """Work until stop is requested; ride through store outages; then release unstarted claims and close."""
        liveness = threading.Thread(target=self._keep_alive, name="worker-liveness", daemon=True)
        liveness.start()
        outage = 0
        try:
            try:
                self.check_credentials()
            except StoreError:
                pass  # the loop below logs the outage and waits for the store
            while not self.stop_requested.is_set():
                try:
                    if outage:
                        self._recover_own_claims()
                        log.warning("store available again; delivery resumes", extra={"worker": self.id})
                        outage = 0
                    if self.run_once() == 0:
                        self.stop_requested.wait(self.settings.worker.poll_interval_s)
                except StoreError as exc:
                    if not outage:
                        log.warning(
                            "store unavailable; delivery paused until it is back: %s", exc, extra={"worker": self.id}
                        )
                    with self._held_lock:
                        self._held.clear()  # the leases lapse or are given back when the store returns
                    self.stop_requested.wait(STORE_BACKOFF_S[min(outage, len(STORE_BACKOFF_S) - 1)])
                    outage += 1
        finally:
            self.close()

    def check_credentials(self) -> None:
        """Try each sink's credentials once at start, so a rejected token pauses its sink (shown by /readyz,
        `status` and the dashboard) within seconds, not only when the first call comes in to be delivered.

        A CRM that cannot be reached now pauses nothing: deliveries find out and retry as usual. A paused sink
        is left to its scheduled probe."""
        for name, runtime in self._runtimes.items():
            if self.stop_requested.is_set() or self.ledger.sinks.status(name).paused:
                continue
            try:
                runtime.sink.check_auth()
            except AuthError as exc:
                reason = f"credentials rejected: {exc.crm_message or exc}"
                self.ledger.sinks.pause(name, reason, probe_in_s=self.settings.worker.auth_probe_s)
                log.error("sink paused at start: credentials rejected", extra={"sink": name, "code": exc.code})
            except SinkError as exc:
                log.warning(
                    "could not check the sink's credentials at start; deliveries will tell",
                    extra={"sink": name, "error": f"{type(exc).__name__}: {exc}"},
                )
            except Exception:  # noqa: BLE001 - a sink's own bug in its probe must not stop delivery
                log.exception("checking the sink's credentials at start failed", extra={"sink": name})

    def _recover_own_claims(self) -> None:
        """After an outage: whatever this worker held when the store went away is given back (an
        action left in flight is looked up before it is redone, as after a crash)."""
        given_back = self.ledger.deliveries.release_claims_of([self.id])
        if given_back:
            log.info("gave back deliveries held when the store went away", extra={"count": given_back})

    # -- one round ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Housekeeping, then claim and run one batch; returns how many deliveries ran."""
        assert self._runner is not None, "open() first"
        self._housekeeping()
        sinks = self._active_sinks()
        claimed = self.ledger.deliveries.claim(
            self.id, sinks, limit=self.settings.worker.batch_size, lease_s=self.settings.worker.lease_s
        )
        with self._held_lock:
            self._held.update(c.id for c in claimed)
        done = 0
        by_sink: dict[str, list[Claimed]] = {}
        for delivery in claimed:
            by_sink.setdefault(delivery.sink, []).append(delivery)
        for group in by_sink.values():
            try:
                done += self._run_group(group)
            finally:
                with self._held_lock:
                    self._held.difference_update(c.id for c in group)
        return done

    def _run_group(self, group: list[Claimed]) -> int:
        """One sink's claims: together when the sink batches them (a few requests); otherwise one by one, with the
        housekeeping between them, so a mapping edit, a dead worker's claims or a paused sink's probe waits seconds,
        not a whole claim of a sink that takes a second per call, and the rest is given back at once when a stop is
        asked or the sink pauses or is rate-limited meanwhile. Returns how many ran."""
        assert self._runner is not None, "open() first"
        one_by_one = not self._runner.batches(group)
        for index in range(0, len(group), 1 if one_by_one else len(group)):
            if self.stop_requested.is_set() or not self._active(group[0].sink):
                self._release([c.id for c in group[index:]])
                return index
            if index:
                self._housekeeping()
            self._runner.run_many(group[index : index + 1] if one_by_one else group)
        return len(group)

    def _active_sinks(self) -> list[str]:
        """Sinks neither paused (credentials) nor blocked (rate limit) right now."""
        return [name for name in self._runtimes if self._active(name)]

    def _active(self, name: str) -> bool:
        """This sink is neither paused nor blocked right now (one read of its state)."""
        status = self.ledger.sinks.status(name)
        blocked = status.blocked_until is not None and status.blocked_until > utcnow()
        return not status.paused and not blocked

    def _reload_changed_mappings(self) -> None:
        """A mapping fixed on disk applies to the next plan without a restart (replay relies on it).

        A file that no longer loads keeps the previous mapping in use; the problem (FILE:LINE, the error) is logged
        once per change of the file and recorded in the store, so /readyz, `connector status`, the dashboard and
        /metrics show it until the file loads again (connector.sink_health).
        """
        from connector.sink_health import mapping_error_text

        for name, runtime in list(self._runtimes.items()):
            path = mapping_path(self.settings, name)
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                digest = f"unreadable:{exc.strerror}"
            if digest == runtime.mapping.sha256:
                self._mapping_fixed(name, path)
                continue
            if self._broken_mappings.get(name) == digest:
                continue  # this broken version was already reported
            try:
                mapping = load_mapping(path)
            except ConfigError as exc:
                error = mapping_error_text(exc)
                self.ledger.sinks.note_mapping_error(name, error)  # first: a store outage retries the whole step
                self._broken_mappings[name] = digest
                log.error(
                    "mapping changed but does not load; keeping the previous one:\n%s", error, extra={"sink": name}
                )
                continue
            self._runtimes[name] = SinkRuntime(runtime.sink, mapping, runtime.abilities)
            log.info("mapping reloaded", extra={"sink": name, "mapping": str(path)})
            self._mapping_fixed(name, path)

    def _mapping_fixed(self, name: str, path: object) -> None:
        """The file loads (again): forget a recorded error, saying so once."""
        if name in self._broken_mappings or not self._mapping_checked:
            cleared = self.ledger.sinks.clear_mapping_error(name)  # a store outage leaves it to the next check
            self._broken_mappings.pop(name, None)
            if cleared:
                log.info("mapping loads again; its error is cleared", extra={"sink": name, "mapping": str(path)})

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_reload >= MAPPING_CHECK_S or not self._mapping_checked:
            self._reload_changed_mappings()
            self._mapping_checked = True
            self._last_reload = now
        if now - self._last_dead_check >= HEARTBEAT_S:
            self.recover_dead_workers()
            self._last_dead_check = now
        if now - self._last_sweep >= min(SWEEP_S, self.settings.worker.lease_s / 2):
            self.ledger.sinks.forget_stopped_workers(older_than_s=FORGET_STOPPED_S)
            recovered = self.ledger.deliveries.sweep_expired()
            if recovered:
                log.warning("recovered expired leases", extra={"count": recovered})
            self._last_sweep = now
        self._probe_paused_sinks()
        if self.settings.store.retention_days is not None and now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S  # before purging: a store error must not make it retry at once
            if self.purge_expired().more_left:
                self._next_purge = now + PURGE_AGAIN_S

    def purge_expired(self) -> PurgeCounts:
        """One step of retention: purge part of what is older than `store.retention_days` (see ledger.retention)."""
        days = self.settings.store.retention_days
        if days is None:
            return PurgeCounts()
        counts = self.ledger.retention.purge(cutoff(days), max_batches=PURGE_BATCHES)
        if counts.anything:
            log.info("retention: personal data purged", extra={"retention_days": days, **counts.as_dict()})
        return counts

    def recover_dead_workers(self) -> int:
        """Give dead workers' claims back at once (see the module docstring); returns how many."""
        back_since = self._store_ok_since
        by_age = back_since is not None and time.monotonic() - back_since >= DEAD_AFTER_S
        dead = self.ledger.sinks.dead_workers(me=self.id, stale_s=DEAD_AFTER_S, judge_by_age=by_age)
        if not dead:
            return 0
        recovered = self.ledger.deliveries.release_claims_of(dead)
        self.ledger.sinks.declare_dead(dead, f"declared dead by {self.id}: no heartbeat or process gone")
        if recovered:
            log.warning("recovered the claims of dead workers", extra={"count": recovered, "workers": len(dead)})
        return recovered

    def _probe_paused_sinks(self) -> None:
        """A paused sink tests its credentials every auth_probe_s; when they work, deliveries resume."""
        now = utcnow()
        for name, runtime in self._runtimes.items():
            status = self.ledger.sinks.status(name)
            if not status.paused or (status.next_probe_at and status.next_probe_at > now):
                continue
            try:
                runtime.sink.check_auth()
            except AuthError as exc:
                self.ledger.sinks.schedule_probe(name, probe_in_s=self.settings.worker.auth_probe_s)
                log.warning("sink still paused: credentials rejected", extra={"sink": name, "code": exc.code})
                continue
            except SinkError as exc:
                self.ledger.sinks.schedule_probe(name, probe_in_s=self.settings.worker.auth_probe_s)
                log.warning("sink still paused: probe failed", extra={"sink": name, "error": type(exc).__name__})
                continue
            self.ledger.sinks.resume(name)
            log.info("sink resumed: credentials work again", extra={"sink": name})

    def _release(self, delivery_ids: list[int]) -> None:
        """Give claimed, unstarted deliveries back (shutdown, or their sink paused meanwhile)."""
        for delivery_id in delivery_ids:
            attempt = self.ledger.deliveries.start_attempt(delivery_id, 0, self.id)
            self.ledger.deliveries.finish(
                delivery_id,
                attempt,
                self.id,
                status=DeliveryStatus.PENDING,
                outcome=DeliveryOutcome.RELEASED,
                due_at=utcnow(),
                count_attempt=False,
            )
            with self._held_lock:
                self._held.discard(delivery_id)

    def _keep_alive(self) -> None:
        """Heartbeat and renew the leases in hand every HEARTBEAT_S, whatever the main loop is doing."""
        last_renewal = 0.0
        failing: str | None = None
        while not self.stop_requested.wait(HEARTBEAT_S):
            if self.exit_when_orphaned and os.getppid() != self._parent_pid:
                log.warning("the serve process that started this worker is gone; stopping", extra={"worker": self.id})
                self.stop_requested.set()
                return
            try:
                self.ledger.sinks.heartbeat(self.id)
                if self._store_ok_since is None:
                    self._store_ok_since = time.monotonic()
                if time.monotonic() - last_renewal >= self.settings.worker.lease_s / 3:
                    self._renew_held()
                    last_renewal = time.monotonic()
                failing = None
            except StoreError:
                self._store_ok_since = None  # the main loop logs the outage once
            except Exception as exc:  # noqa: BLE001 - this thread ending would stop the heartbeat for good:
                # the worker, still delivering, would look dead to every other worker and to /readyz
                if failing != repr(exc):
                    log.exception("heartbeat or lease renewal failed unexpectedly; retrying every beat")
                failing = repr(exc)

    def _finished(self, delivery_id: int) -> None:
        """An attempt's end is recorded: its lease is no longer this worker's to renew."""
        with self._held_lock:
            self._held.discard(delivery_id)

    def _renew_held(self) -> None:
        with self._held_lock:
            held = list(self._held)
        kept = set(self.ledger.deliveries.renew(self.id, held, lease_s=self.settings.worker.lease_s))
        with self._held_lock:
            missing = {i for i in held if i not in kept and i in self._held}
        # A claim whose finish was just committed is not leased any more but leaves _held only a moment later, when
        # the runner reports it: lost is what two renewals in a row find missing (a finished one is gone by then).
        lost, self._unrenewed = missing & self._unrenewed, missing
        if lost:
            # Declared dead (e.g. cut off from the store too long): the IN_FLIGHT lease check keeps
            # this worker from calling the CRM for them again, and finish() will not overwrite them.
            log.warning("some claims were released by another worker", extra={"lost": len(lost)})


def run_worker(settings: Settings, *, embedded: bool = False, announce: Callable[[str], None] | None = None) -> None:
    """Entry point of `connector worker` and of the embedded worker process.

    Waits for the store when it is down at start (SIGTERM/SIGINT still stop it at once). A
    configuration that cannot work (unknown sink type, broken mapping) raises ConfigError, after
    recording why in the store for /readyz and `connector status`.

    A standalone worker with `worker.metrics_port` serves its counters there from the start (a port in use fails
    at once, before the store is waited for) and tells `announce` the URL; the embedded one's counters reach
    `serve`'s /metrics through the multiprocess directory instead.
    """
    from connector.logs import setup_logging

    setup_logging(settings.logging)
    metrics, registry = process_metrics()
    endpoint = None
    if not embedded and settings.worker.metrics_port is not None:
        endpoint = CountersServer(registry, settings.worker.metrics_host, settings.worker.metrics_port)
        if announce is not None:
            announce(f"delivery metrics on {endpoint.url}")
    try:
        stop = threading.Event()
        _stop_on_signals(stop, quiet=embedded)
        ledger = _open_patiently(settings, stop)
        if ledger is None:
            return
        worker = Worker(settings, ledger=ledger, metrics=metrics)
        worker.stop_requested = stop
        worker.exit_when_orphaned = embedded
        try:
            worker.open()
        except ConnectorError as exc:
            _record_exit(worker, f"could not start: {exc}")
            raise
        worker.run_forever()
    finally:
        if endpoint is not None:
            endpoint.close()


def _stop_on_signals(stop: threading.Event, *, quiet: bool = False) -> None:
    """`quiet`: the embedded worker, whose stop `serve` announces itself ("draining…", "stopped")."""

    def request_stop(signum: int, _frame: object) -> None:
        log.log(logging.DEBUG if quiet else logging.INFO, "stop requested", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _open_patiently(settings: Settings, stop: threading.Event) -> Ledger | None:
    """Open (and migrate) the store, waiting with a capped backoff while it is unavailable."""
    failures = 0
    while not stop.is_set():
        try:
            return Ledger.open(settings.store)
        except StoreError as exc:
            if not failures:
                log.warning("store unavailable at start; waiting for it: %s", exc)
            stop.wait(STORE_BACKOFF_S[min(failures, len(STORE_BACKOFF_S) - 1)])
            failures += 1
    return None


def _record_exit(worker: Worker, reason: str) -> None:
    try:
        worker.ledger.sinks.process_exited(os.getpid(), reason, worker_prefix="worker")
    except StoreError:
        pass


def last_heartbeat(ledger: Ledger, *, within_s: float) -> datetime | None:
    """Newest heartbeat of a live worker (for /readyz), or None when none is alive."""
    live = ledger.sinks.live_workers(within_s=within_s)
    return max((w["heartbeat_at"] for w in live), default=None)
