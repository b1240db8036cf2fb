"""A forked child never uses its parent's pooled connections (connector.ledger.engine._after_fork_in_child).

An app built before a fork (`gunicorn --preload "connector.app:create_app()"`) hands every worker the
parent's pool. The child must start on connections of its own, and leave the parent's alone: after the
child wrote and exited, the parent's own connection still works, on both backends.
"""

from __future__ import annotations

from typing import Any

from connector.ledger import Ledger
from tests.support.delivery import ingest
from tests.support.forking import fork_queue, run_forked


def _pooled_dbapi_connection(ledger: Ledger) -> Any:
    with ledger.engine.connect() as connection:
        return connection.connection.dbapi_connection


def test_a_forked_child_writes_on_its_own_connections_and_the_parent_keeps_working(ledger: Ledger) -> None:
    ingest(ledger, 1)
    ledger.engine.dispose()  # then the pool holds one connection: the one the child must not be handed
    inherited = _pooled_dbapi_connection(ledger)
    results = fork_queue()

    def child() -> None:
        own = _pooled_dbapi_connection(ledger)
        ingest(ledger, 2)
        results.put(own is not inherited)

    assert run_forked(child) == 0, "the child hung or failed"
    assert results.get(timeout=5) is True, "the child was handed its parent's pooled connection"

    assert _pooled_dbapi_connection(ledger) is inherited  # the parent's pool is its own, unchanged
    ingest(ledger, 3)  # on PostgreSQL, a child that had used this socket would have broken it
    assert ledger.count_events() == 3
