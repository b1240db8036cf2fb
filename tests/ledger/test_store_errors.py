"""Every public ledger callable that touches the database raises StoreError when the store is gone, never a raw
SQLAlchemy, driver or OS error: walked over the ledger modules' classes and functions, so a method added later
without arguments in CALLS below fails here until it is listed (and so checked)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.config import StoreSettings
from connector.errors import StoreError
from connector.ledger import RejectedBody, migrate
from connector.ledger.bulk import BulkStore, FieldWrite, Finish, Mark
from connector.ledger.checkpointer import Checkpointer
from connector.ledger.deliveries import DeliveryStore
from connector.ledger.engine import make_engine
from connector.ledger.event_writer import EventWriter
from connector.ledger.retention import RetentionStore
from connector.ledger.schema import ActionStatus, DeliveryStatus
from connector.ledger.sinkstate import SinkStateStore
from connector.ledger.store import Ledger, _new_delivery
from connector.ledger.write_queue import WriteQueue
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload

NOW = datetime(2026, 11, 26, 15, 4, tzinfo=UTC)
DOCUMENT = sample_payload("gone-1")
EVENT_ROW = {
    "event_id": "gone-1",
    "received_at": NOW,
    "body": b"{}",
    "body_sha256": "0" * 64,
    "content_hash": "0" * 64,
    "content_type": "application/json",
    "normalized": "{}",
    "end_reason": "call_transferred",
    "contact_key": None,
}

CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "Ledger.migrate": ((), {}),
    "Ledger.ping": ((), {}),
    "Ledger.probe": (("test",), {}),
    "Ledger.record_event": (
        (parse_webhook(DOCUMENT),),
        {
            "body": json.dumps(DOCUMENT).encode(),
            "content_type": "application/json",
            "content_hash": content_hash(DOCUMENT),
            "sinks": ["s"],
        },
    ),
    "Ledger.quarantine": ((RejectedBody(b"{", "application/json", 400, "invalid_json", "bad", []),), {}),
    "Ledger.get_event": (("e",), {}),
    "Ledger.deliveries_for": (("e",), {}),
    "Ledger.count_events": ((), {}),
    "Ledger.list_quarantine": ((), {}),
    "Ledger.get_quarantined": ((1,), {}),
    "Ledger.note_replay": ((1, "accepted"), {"settled": True}),
    "DeliveryStore.claim": (("w", ["s"]), {"limit": 1, "lease_s": 30.0}),
    "DeliveryStore.renew": (("w", [1]), {"lease_s": 30.0}),
    "DeliveryStore.sweep_expired": ((), {}),
    "DeliveryStore.release_claims_of": ((["w"],), {}),
    "DeliveryStore.journal": ((1,), {}),
    "DeliveryStore.journal_mark": ((1, "a", "upsert_contact", ActionStatus.SUCCEEDED), {"crm_id": "c"}),
    "DeliveryStore.journal_forget": ((1, "a"), {}),
    "DeliveryStore.save_plan": ((1, "{}"), {}),
    "DeliveryStore.start_attempt": ((1, 1, "w"), {}),
    "DeliveryStore.finish": ((1, 1, "w"), {"status": DeliveryStatus.SUCCEEDED, "outcome": "ok"}),
    "DeliveryStore.requeue": ((), {"event_id": "e"}),
    "DeliveryStore.add_missing": (("e", ["s"], 10), {}),
    "DeliveryStore.attempts_for": ((1,), {}),
    "DeliveryStore.counts": ((), {}),
    "DeliveryStore.unfinished": ((), {"after_id": 0, "limit": 10}),
    "DeliveryStore.oldest_due": (("s",), {}),
    "SinkStateStore.status": (("s",), {}),
    "SinkStateStore.all": ((), {}),
    "SinkStateStore.pause": (("s", "why"), {"probe_in_s": 1.0}),
    "SinkStateStore.schedule_probe": (("s",), {"probe_in_s": 1.0}),
    "SinkStateStore.resume": (("s",), {}),
    "SinkStateStore.block_until": (("s", NOW), {}),
    "SinkStateStore.note_mapping_error": (("s", "err"), {}),
    "SinkStateStore.clear_mapping_error": (("s",), {}),
    "SinkStateStore.written": (("s", "c", ["p"]), {}),
    "SinkStateStore.record_written": (("s", "c", {"p": ("v", 1, NOW)}, "e"), {}),
    "SinkStateStore.note_missing": (("s", {("Contact", "p"): "why"}, "e"), {}),
    "SinkStateStore.clear_missing": (("s",), {}),
    "SinkStateStore.missing": ((), {}),
    "SinkStateStore.cached_contact": (("s", "k"), {"max_age_s": 60.0}),
    "SinkStateStore.cache_contact": (("s", "k", "Contact", "1"), {}),
    "SinkStateStore.cached_contacts": (("s", ["k"]), {"max_age_s": 60.0}),
    "SinkStateStore.cache_contacts": (("s", {"k": ("Contact", "1")}), {}),
    "SinkStateStore.forget_contact": (("s", "k"), {}),
    "SinkStateStore.heartbeat": (("w",), {}),
    "SinkStateStore.worker_stopped": (("w",), {}),
    "SinkStateStore.process_exited": ((1, "exit 1"), {"worker_prefix": "w"}),
    "SinkStateStore.dead_workers": ((), {"me": "w", "stale_s": 60.0}),
    "SinkStateStore.declare_dead": ((["w"], "gone"), {}),
    "SinkStateStore.live_workers": ((), {"within_s": 60.0}),
    "SinkStateStore.silent_workers_here": ((), {"within_s": 60.0}),
    "SinkStateStore.recent_exits": ((), {"within_s": 60.0}),
    "SinkStateStore.forget_stopped_workers": ((), {"older_than_s": 60.0}),
    "SinkStateStore.take_tokens": (("s", 1.0), {"capacity": 10.0, "per_second": 1.0}),
    "BulkStore.events": ((["e"],), {}),
    "BulkStore.journals": (([1],), {}),
    "BulkStore.written": (("s", {"c": {"p"}}), {}),
    "BulkStore.start": (("w", [(1, 1)], {1: "{}"}), {}),
    "BulkStore.write": (
        ("w",),
        {
            "marks": [Mark(1, "a", "upsert_contact", ActionStatus.SUCCEEDED)],
            "fields": [FieldWrite("s", "c", "p", "v", 1, NOW, "e")],
            "finishes": [Finish(1, 1, DeliveryStatus.SUCCEEDED, "ok")],
        },
    ),
    "EventWriter.write": ((EVENT_ROW, [_new_delivery("gone-1", "s", 10, NOW, None)]), {}),
    "Checkpointer.checkpoint": ((), {}),
    "RetentionStore.purge": ((NOW,), {}),
    "RetentionStore.forget_contact": (("+12025550177",), {}),
    "migrate.current_revision": ((), {}),
    "migrate.upgrade": ((), {}),
}
"""Arguments for each public callable that touches the database (the engine or store comes first)."""

NO_DATABASE = {
    "Ledger.dispose",
    "EventWriter.close",
    "Checkpointer.committed",
    "Checkpointer.close",
    "RetentionStore.close",
    "migrate.head_revision",
}
"""Public callables that never reach the database."""

CLASSES = (Ledger, DeliveryStore, SinkStateStore, BulkStore, EventWriter, Checkpointer, RetentionStore)


def _public_callables() -> set[str]:
    names = {f"migrate.{name}" for name, value in vars(migrate).items() if _public_function_of(value, migrate)}
    for cls in CLASSES:
        names |= {
            f"{cls.__name__}.{name}"
            for name, value in vars(cls).items()
            if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, classmethod))
        }
    return names - {"Ledger.open"}  # checked on its own below: it takes settings, not an engine


def _public_function_of(value: Any, module: Any) -> bool:
    return inspect.isfunction(value) and value.__module__ == module.__name__ and not value.__name__.startswith("_")


@pytest.fixture(params=["sqlite-directory", "sqlite-no-such-folder", "postgresql-closed-port"])
def gone_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSettings]:
    """A SQLite "file" that is a directory or lies under a file (cannot be opened, even by root; nor can the
    migration lock file beside it), or PostgreSQL on a port nobody serves."""
    if request.param == "sqlite-directory":
        database = tmp_path / "ledger.db"
        database.mkdir()
        yield StoreSettings(url=f"sqlite:///{database}", sqlite_busy_timeout_ms=50)
    elif request.param == "sqlite-no-such-folder":  # a file where its folder should be: neither SQLite nor a lock
        (tmp_path / "file").write_text("")
        yield StoreSettings(url=f"sqlite:///{tmp_path / 'file' / 'ledger.db'}")
    else:
        yield StoreSettings(url="postgresql+psycopg://connector:secret@127.0.0.1:9/ledger")


def _bound(ledger: Ledger, qualified: str) -> Callable[..., Any]:
    owner, name = qualified.split(".")
    if owner == "migrate":
        return lambda *args, **kwargs: getattr(migrate, name)(ledger.engine, *args, **kwargs)
    target = {
        "Ledger": ledger,
        "DeliveryStore": ledger.deliveries,
        "SinkStateStore": ledger.sinks,
        "BulkStore": ledger.bulk,
        "RetentionStore": ledger.retention,
        "EventWriter": ledger._events,
        # its own, on any backend: a PostgreSQL ledger has none (the pass fails before it would queue)
        "Checkpointer": Checkpointer(ledger.engine, WriteQueue("/nonexistent/ledger.db")),
    }[owner]
    return getattr(target, name)  # type: ignore[no-any-return]


def test_every_public_ledger_callable_is_listed() -> None:
    assert _public_callables() == set(CALLS) | NO_DATABASE


def test_every_public_ledger_callable_raises_store_error_when_the_store_is_gone(gone_store: StoreSettings) -> None:
    ledger = Ledger(make_engine(gone_store))
    raw: dict[str, str] = {}
    try:
        for qualified, (args, kwargs) in CALLS.items():
            try:
                _bound(ledger, qualified)(*args, **kwargs)
            except StoreError as exc:
                assert exc.__cause__ is not None, qualified  # the driver's error is kept for the log
                continue
            except Exception as exc:  # noqa: BLE001 - collected, so one run names every offender
                raw[qualified] = repr(exc)[:200]
                continue
            raw[qualified] = "returned without an error"
    finally:
        ledger.dispose()
    assert raw == {}


def test_opening_a_gone_store_raises_store_error(gone_store: StoreSettings) -> None:
    with pytest.raises(StoreError, match=r"cannot open the store and bring its schema up to date: \w+: \S"):
        Ledger.open(gone_store)
    opened = Ledger.open(gone_store, migrate_schema=False)  # connects lazily: only a use of it fails
    with pytest.raises(StoreError, match="store unreachable"):
        opened.ping()
    # What failed and the driver's own first line (refused, unable to open …), for `connector status` and the logs
    with pytest.raises(
        StoreError, match=r"^store unavailable while trying to run SinkStateStore\.all: \w+: \S"
    ) as raised:
        opened.sinks.all()
    assert "\n" not in str(raised.value) and "SELECT" not in str(raised.value)
    opened.dispose()
