"""Brings a store's schema to the newest revision with Alembic, safely from several processes at once.

Every process that opens the ledger may call `upgrade()`: PostgreSQL serializes them with an
advisory lock, SQLite with a lock file beside the database (filelock), so two gunicorn workers
starting together never run the same migration twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, text

from connector.ledger._errors import translating

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x2C0_2EC7  # arbitrary constant shared by every connector process


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this version of the code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the store is at, or None for an empty store."""
    with translating("read the schema revision"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Upgrade(NamedTuple):
    """What `upgrade()` did, for `connector migrate` to say: both revisions read under the migration lock."""

    before: str | None
    """The store's revision before; None for an empty store (the schema was created)."""
    after: str
    """The revision after: the head."""


def upgrade(engine: Engine) -> Upgrade:
    """Migrate the store to the head revision (no-op when already there); the revisions before and after."""
    with translating("migrate the schema"), _exclusive(engine), engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        connection.rollback()  # end the read's transaction: the migration runs its own
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = MigrationContext.configure(connection).get_current_revision()
        connection.commit()
    assert after is not None, "no revision after the upgrade"
    return Upgrade(before, after)


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock_connection:
            _pg_lock(lock_connection)
            try:
                yield
            finally:
                lock_connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                lock_connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with FileLock(f"{database}.migrate.lock"):  # waits as long as another process migrates
        yield


def _pg_lock(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
    connection.commit()
