"""The SQLite store holds every call's phone number, names and transcript: other users of the host must not read it.

Under the usual umask (022) SQLite creates its file 0644, readable by every local user; the connector creates it
owner-only first, and SQLite gives the WAL and its -shm index the database file's permissions.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import StoreSettings
from connector.ledger import Ledger
from tests.support.delivery import ingest


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_its_wal_and_shm_are_readable_by_their_owner_only(tmp_path: Path, usual_umask: None) -> None:
    file = tmp_path / "ledger.db"
    ledger = Ledger.open(StoreSettings(url=f"sqlite:///{file}"))
    try:
        ingest(ledger, 1, sinks=())  # a committed webhook: the WAL and its index exist now
        files = [file, Path(f"{file}-wal"), Path(f"{file}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        ledger.dispose()


def test_an_existing_store_keeps_its_mode_and_validate_warns_when_others_can_read_it(
    tmp_path: Path, usual_umask: None
) -> None:
    file = tmp_path / "shared.db"
    file.touch(mode=0o644)
    store = StoreSettings(url=f"sqlite:///{file}")
    ledger = Ledger.open(store)
    ledger.dispose()
    assert mode(file) == 0o644  # the operator's choice is not changed behind their back
    config = tmp_path / "c.yaml"
    config.write_text(f"receiver: {{auth: {{tokens: [t]}}}}\nstore: {{url: 'sqlite:///{file}'}}\n")
    result = CliRunner().invoke(main, ["validate", "--offline", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0  # a warning, not a refusal
    assert f"warning: store: the store {file} is readable by every user on this host (mode 0644)" in result.stderr
    assert f"chmod 600 {file} {file}-wal {file}-shm" in result.stderr

    file.chmod(0o600)
    result = CliRunner().invoke(main, ["validate", "--offline", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0 and "warning: store" not in result.stderr
