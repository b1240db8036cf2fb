"""Question names seen in stored calls: which ``twox_q_<name>`` properties `crm-setup` must create.

2X sends whatever questions the customer's script asks; the connector learns their names only from the calls.
The newest events are read (not all: an old ledger can hold millions, and a question dropped from the script
long ago needs no property), with SQLAlchemy Core so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from connector.config import StoreSettings
from connector.errors import StoreError
from connector.ledger import Ledger
from connector.ledger.engine import absent_sqlite_file
from connector.ledger.schema import events

NEWEST_EVENTS = 10_000


def seen_question_names(ledger: Ledger, *, limit: int = NEWEST_EVENTS) -> list[str]:
    """Sorted, unique ``question_fields`` keys of the newest ``limit`` stored events.

    A store that was never migrated (set-up run before the first `connector serve`) has seen no question: [].
    """
    if not sa.inspect(ledger.engine).has_table(events.name):
        return []
    query = sa.select(events.c.normalized).order_by(events.c.received_at.desc()).limit(limit)
    names: set[str] = set()
    with ledger.engine.connect() as connection:
        for (normalized,) in connection.execute(query):
            try:
                questions = json.loads(normalized).get("question_fields")
            except (ValueError, AttributeError):
                continue
            if isinstance(questions, dict):
                names.update(str(name) for name in questions if str(name).strip())
    return sorted(names)


def stored_question_names(store: StoreSettings) -> list[str]:
    """`seen_question_names` of the configured store, without creating or migrating it: set-up often runs before
    the first `connector serve`, and must not leave an empty `connector.db` behind (a SQLite file that does not
    exist has seen no question). A store that cannot be read is a StoreError (the caller says so)."""
    if absent_sqlite_file(store):
        return []
    ledger = Ledger.open(store, migrate_schema=False)
    try:
        return seen_question_names(ledger)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot read question names from the store: {exc.__class__.__name__}") from exc
    finally:
        ledger.dispose()
