"""Empty ledgers: the PostgreSQL database is shared by the whole session, so tests start from empty tables."""

from __future__ import annotations

from connector.ledger import Ledger
from connector.ledger.schema import metadata
from tests.support.delivery import ingest
from tests.support.settings import make_settings


def truncate_all(ledger: Ledger) -> None:
    """Delete every row, children first (foreign keys)."""
    with ledger.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


def empty_store(store_url: str) -> None:
    """Open the store at `store_url` (migrating it) and empty every table."""
    ledger = Ledger.open(make_settings(store_url).store)
    truncate_all(ledger)
    ledger.dispose()


WORKER = "worker-a"


def claimed_ids(ledger: Ledger, count: int, *, worker: str = WORKER) -> list[int]:
    """Ingest `count` events for distinct numbers and claim their deliveries as `worker`."""
    for i in range(count):
        ingest(ledger, 500 + i, record_phone_number=f"+1202555{1000 + i:04d}")
    claimed = ledger.deliveries.claim(worker, ["rec"], limit=count, lease_s=60)
    assert len(claimed) == count
    return [c.id for c in claimed]
