"""Shared fixtures: fresh ledgers on SQLite and on the real local PostgreSQL, a served receiver over
real HTTP, and a clean environment for every test."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.ledger import Ledger
from tests.support.ledger import truncate_all
from tests.support.net import is_loopback
from tests.support.recorder import Recorder
from tests.support.serving import Served, serve
from tests.support.settings import PG_ADMIN_URL, make_settings


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach past this machine: resolving or connecting to any other host fails loudly."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if not is_loopback(name):
            raise OSError(f"test tried to reach {name!r}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may depend on the developer's credentials, proxies or config (nor on a config file an earlier
    test loaded: hints name the process's config file)."""
    monkeypatch.setattr("connector.hints._config_file", None)
    for name in list(os.environ):
        if name.startswith(("TWOX_", "HUBSPOT_", "SF_", "CONNECTOR_CONFIG")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server for this test session, dropped at the end."""
    if os.environ.get("CONNECTOR_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("CONNECTOR_TEST_SKIP_POSTGRES=1: PostgreSQL tests explicitly disabled")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"connector_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.__class__.__name__}); start it "
            "(see README, 'Running the tests') or set CONNECTOR_TEST_SKIP_POSTGRES=1 to skip its tests"
        )
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    sa.create_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_server_url")


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    """A migrated, empty ledger on each backend."""
    opened = Ledger.open(make_settings(store_url).store)
    truncate_all(opened)
    yield opened
    opened.dispose()


@pytest.fixture
def served(ledger: Ledger, store_url: str) -> Iterator[Served]:
    """The app on a threaded Werkzeug server on a free loopback port, one per test."""
    settings = make_settings(store_url, sinks={})
    yield from serve(settings, ledger)


@pytest.fixture
def served_sqlite(tmp_path: Path) -> Iterator[Served]:
    """Like `served`, SQLite only (for tests about HTTP, not about the backend)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'served.db'}")
    opened = Ledger.open(settings.store)
    yield from serve(settings, opened)
    opened.dispose()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording HTTP endpoint for the `http` sink (tests/support/recorder.py)."""
    server = Recorder()
    server.start()
    yield server
    server.stop()
