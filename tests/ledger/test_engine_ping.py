"""PostgreSQL engines ping a pooled connection only after it sat idle (connector.ledger.engine): a connection the
server dropped is replaced unseen once idle, and one used a moment ago is trusted (its failure is a StoreError)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from connector.ledger import engine as engine_module
from connector.ledger.engine import make_engine
from tests.support.settings import make_settings


@pytest.fixture
def pg_engine(pg_server_url: str) -> Iterator[Engine]:
    engine = make_engine(make_settings(pg_server_url).store)
    yield engine
    engine.dispose()


def _pooled_backend_killed(engine: Engine) -> int:
    """The pid of the pool's only connection, terminated by the server behind the pool's back."""
    with engine.connect() as connection:
        pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    killer = make_engine(make_settings(engine.url.render_as_string(hide_password=False)).store)
    try:
        with killer.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    finally:
        killer.dispose()
    return pid


def test_an_idle_connection_dropped_by_the_server_is_replaced_unseen(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = _pooled_backend_killed(pg_engine)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
    with pg_engine.connect() as connection:
        assert int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()) != killed


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _pooled_backend_killed(pg_engine)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)
    with pytest.raises(OperationalError), pg_engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # no ping: the statement itself meets the dead connection
    with pg_engine.connect() as connection:  # the pool was invalidated: the next checkout works
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
