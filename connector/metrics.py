"""Prometheus metrics: what happened (counters kept by each process) and where things stand (read
from the ledger at scrape time, so every receiver and worker process agrees).

`connector serve` runs several gunicorn workers and a delivery worker; their counters meet through
prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by `serve`). Without it
(tests, a single process) each process reports its own counters. A standalone `connector worker` serves its
own counters on `worker.metrics_port` (serve_counters), since no `serve` shares a directory with it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from connector.config import Settings
from connector.errors import ConfigError, ConfigProblem, StoreError
from connector.ledger import Ledger
from connector.ledger.schema import events, quarantine
from connector.payload import EndReason
from connector.sink_health import ENGINE_STATES, SINK_STATES, Health, assess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DUE = ("pending", "retry_scheduled", "leased")
_KNOWN_END_REASONS = frozenset(reason.value for reason in EndReason)
UNKNOWN_LABEL = "unknown"
"""Label for every end_reason 2X did not document: the payload chooses the value, so it must not
choose how many series Prometheus keeps (1,000 invented reasons would be 1,000 series)."""


def end_reason_label(reason: str | None) -> str:
    """A bounded label for an end_reason: the documented values, `missing`, or `unknown`."""
    if reason is None:
        return "missing"
    return reason if reason in _KNOWN_END_REASONS else UNKNOWN_LABEL


class Metrics:
    """The counters one process increments; created once per process, never at import."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.http_responses = Counter(
            "connector_http_responses_total", "Webhook answers by HTTP status.", ["status"], registry=registry
        )
        self.attempts = Counter(
            "connector_delivery_attempts_total",
            "Delivery attempts by sink and outcome (succeeded, retry, rate_limited, paused, dead, held).",
            ["sink", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "connector_delivery_attempt_seconds",
            "Duration of one delivery attempt.",
            ["sink"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.rate_limited = Counter(
            "connector_rate_limited_total", "429 / rate-limit answers from a CRM.", ["sink"], registry=registry
        )


class LedgerCollector:
    """Gauges computed from the ledger when Prometheus scrapes: the same answer from any process."""

    def __init__(self, ledger: Ledger, sinks: Iterable[str] = (), settings: Settings | None = None) -> None:
        self._ledger = ledger
        self._sinks = tuple(sinks)
        """Configured sinks: their gauges are exported at 0 too, so an alert on `== 0` or `> 0` sees them."""
        self._settings = settings
        """With settings, the health model's gauges too (connector.sink_health: the states every surface shows)."""

    def collect(self) -> Iterator[Any]:
        try:
            yield from self._collect()
        except (SQLAlchemyError, StoreError):
            up = GaugeMetricFamily("connector_store_up", "1 when the store answered this scrape.")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[Any]:
        ledger = self._ledger
        up = GaugeMetricFamily("connector_store_up", "1 when the store answered this scrape.")
        up.add_metric([], 1)
        yield up
        with ledger.engine.connect() as connection:
            by_reason = connection.execute(
                select(events.c.end_reason, func.count()).group_by(events.c.end_reason)
            ).all()
            by_code = connection.execute(select(quarantine.c.code, func.count()).group_by(quarantine.c.code)).all()
        received = GaugeMetricFamily(
            "connector_events_stored", "Events stored, by normalized end_reason.", labels=["end_reason"]
        )
        folded: dict[str, int] = {}
        for reason, count in by_reason:
            label = end_reason_label(reason)
            folded[label] = folded.get(label, 0) + count
        for label, count in sorted(folded.items()):
            received.add_metric([label], count)
        yield received
        refused = GaugeMetricFamily(
            "connector_quarantined", "Refused bodies kept in quarantine, by code.", labels=["code"]
        )
        for code, count in by_code:
            refused.add_metric([code], count)
        yield refused
        states = GaugeMetricFamily("connector_deliveries", "Deliveries by sink and state.", labels=["sink", "state"])
        backlog = GaugeMetricFamily("connector_backlog", "Deliveries not yet done, by sink.", labels=["sink"])
        counts = ledger.deliveries.counts()
        sink_states = ledger.sinks.all()
        known_sinks = sorted({*self._sinks, *(s for s, _ in counts), *(state.sink for state in sink_states)})
        totals: dict[str, int] = dict.fromkeys(known_sinks, 0)
        for (sink, status), count in counts.items():
            states.add_metric([sink, status], count)
            if status in _DUE:
                totals[sink] = totals.get(sink, 0) + count
        for sink, count in totals.items():
            backlog.add_metric([sink], count)
        yield states
        yield backlog
        oldest = GaugeMetricFamily(
            "connector_oldest_due_age_seconds", "Age of the oldest delivery still due.", labels=["sink"]
        )
        paused = GaugeMetricFamily(
            "connector_sink_paused", "1 while a sink is paused (credentials rejected).", labels=["sink"]
        )
        now = datetime.now(UTC)
        for sink in {s for s, _ in counts}:
            due = ledger.deliveries.oldest_due(sink)
            if due is not None:
                oldest.add_metric([sink], max(0.0, (now - due).total_seconds()))
        paused_sinks = {state.sink for state in sink_states if state.paused}
        for sink in known_sinks:
            paused.add_metric([sink], 1 if sink in paused_sinks else 0)
        yield oldest
        yield paused
        missing = GaugeMetricFamily(
            "connector_sink_missing_fields",
            "Fields a sink's CRM refused as missing or not writable (skipped until crm-setup creates them).",
            labels=["sink"],
        )
        counted: dict[str, int] = {}
        for item in ledger.sinks.missing():
            counted[item.sink] = counted.get(item.sink, 0) + 1
        for sink in {s for s, _ in ledger.deliveries.counts()} | set(counted):
            missing.add_metric([sink], counted.get(sink, 0))
        yield missing
        workers = GaugeMetricFamily("connector_live_workers", "Delivery workers with a recent heartbeat.")
        workers.add_metric([], len(ledger.sinks.live_workers(within_s=20)))
        yield workers
        if self._settings is not None:
            yield from _health_gauges(assess(ledger, self._settings))


def _health_gauges(health: Health) -> Iterator[Any]:
    """One 0/1 series per sink and state (every state exported, so an alert on `== 1` needs no `absent()`), and
    the engine's state likewise. A sink can be in several states at once (a broken mapping and missing fields);
    `ok` is 1 only when it is in none."""
    sink_state = GaugeMetricFamily(
        "connector_sink_state",
        "1 while a sink is in this state (ok, paused, "
        "rate_limited, broken_mapping, missing_fields); the same model as /readyz, "
        "`connector status` and the dashboard.",
        labels=["sink", "state"],
    )
    for name, sink in health.sinks.items():
        present = {c.state for c in sink.conditions} or {"ok"}
        for state in SINK_STATES:
            sink_state.add_metric([name, state], 1 if state in present else 0)
    yield sink_state
    engine = GaugeMetricFamily(
        "connector_engine_state",
        "1 for the delivery engine's current state (ok, idle, restarted, dead).",
        labels=["state"],
    )
    for state in ENGINE_STATES:
        engine.add_metric([state], 1 if state == health.engine.state else 0)
    yield engine


def process_metrics(
    ledger: Ledger | None = None, sinks: Iterable[str] = (), settings: Settings | None = None
) -> tuple[Metrics, CollectorRegistry]:
    """This process's counters, and the registry `/metrics` exposes: every process's counters (in
    multiprocess mode) or this one's, plus the ledger's gauges when a ledger is given."""
    if os.environ.get(MULTIPROC_ENV):
        metrics = Metrics(registry=None)  # values go to the shared directory
        exposed = CollectorRegistry()
        MultiProcessCollector(exposed)
    else:
        exposed = CollectorRegistry()
        metrics = Metrics(registry=exposed)
    if ledger is not None:
        exposed.register(LedgerCollector(ledger, sinks, settings))
    return metrics, exposed


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of a registry."""
    return generate_latest(registry)


class CountersServer:
    """A standalone worker's `/metrics` endpoint, served from a daemon thread until `close()`."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise ConfigError(
                "<config>",
                [ConfigProblem("worker.metrics_port", f"{host}:{port} {why}: choose another port (0: any free one)")],
            ) from None
        self.url = f"http://{_url_host(host)}:{self._server.server_port}/metrics"
        """Where Prometheus scrapes it (the real port when `port` was 0)."""

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
