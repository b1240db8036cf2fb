"""Empty ledgers: the PostgreSQL database is shared by the whole session, so tests start from empty tables."""

from __future__ import annotations

from connector.ledger import Ledger
from connector.ledger.schema import metadata
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
