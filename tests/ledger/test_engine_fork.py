"""A forked child never uses its parent's pooled connections (connector.ledger.engine._after_fork_in_child).

An app built before a fork (`gunicorn --preload "connector.app:create_app()"`) hands every worker the
parent's pool. The child must start on connections of its own, and leave the parent's alone: after the
child wrote and exited, the parent's own connection still works, on both backends.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from connector.ledger import Ledger
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload


def _record(ledger: Ledger, event_id: str) -> None:
    document = sample_payload(event_id)
    ledger.record_event(
        parse_webhook(document),
        body=b"{}",
        content_type="application/json",
        content_hash=content_hash(document),
        sinks=["s"],
    )


def _pooled_dbapi_connection(ledger: Ledger) -> Any:
    with ledger.engine.connect() as connection:
        return connection.connection.dbapi_connection


def test_a_forked_child_writes_on_its_own_connections_and_the_parent_keeps_working(ledger: Ledger) -> None:
    _record(ledger, "parent-before")
    ledger.engine.dispose()  # then the pool holds one connection: the one the child must not be handed
    inherited = _pooled_dbapi_connection(ledger)
    context = multiprocessing.get_context("fork")
    results: Any = context.Queue()

    def child() -> None:
        own = _pooled_dbapi_connection(ledger)
        _record(ledger, "child")
        results.put(own is not inherited)

    process = context.Process(target=child, daemon=True)
    process.start()
    process.join(30)
    if process.exitcode is None:
        process.kill()  # a hung child must fail this test, not hold up pytest's exit
    assert process.exitcode == 0, "the child hung or failed"
    assert results.get(timeout=5) is True, "the child was handed its parent's pooled connection"

    assert _pooled_dbapi_connection(ledger) is inherited  # the parent's pool is its own, unchanged
    _record(ledger, "parent-after")  # on PostgreSQL, a child that had used this socket would have broken it
    assert ledger.count_events() == 3
