"""Ledgers for tests: empty ones (the PostgreSQL database is shared by the whole session, so tests start from empty
tables), a store one revision behind, claimed deliveries."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from connector.ledger import Ledger, migrate
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


def store_one_revision_behind(url: str) -> str:
    """A store migrated up to the revision before the head, as an older connector left it; that revision."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    previous = ScriptDirectory.from_config(config).get_revision(migrate.head_revision()).down_revision
    assert isinstance(previous, str)
    engine = create_engine(url)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, previous)
        connection.commit()
    engine.dispose()
    return previous


WORKER = "worker-a"


def claimed_ids(ledger: Ledger, count: int, *, worker: str = WORKER) -> list[int]:
    """Ingest `count` events for distinct numbers and claim their deliveries as `worker`."""
    for i in range(count):
        ingest(ledger, 500 + i, record_phone_number=f"+1202555{1000 + i:04d}")
    claimed = ledger.deliveries.claim(worker, ["rec"], limit=count, lease_s=60)
    assert len(claimed) == count
    return [c.id for c in claimed]
