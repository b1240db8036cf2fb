"""Two processes migrating the same SQLite file at once: one waits on the lock file, both end with a migrated store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from filelock import FileLock
from sqlalchemy import create_engine

from connector.ledger import migrate

_MIGRATE = (
    "import sys; from sqlalchemy import create_engine; from connector.ledger import migrate; "
    "engine = create_engine(sys.argv[1]); migrate.upgrade(engine); print(migrate.current_revision(engine))"
)


def _start(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", _MIGRATE, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_a_second_migrator_waits_for_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    url = f"sqlite:///{database}"
    with FileLock(f"{database}.migrate.lock"):  # another process is migrating
        waiting = _start(url)
        try:
            waiting.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        assert waiting.poll() is None, "the migrator did not wait for the lock"
        assert migrate.current_revision(create_engine(url)) is None
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert out.strip() == migrate.head_revision()


def test_two_migrators_at_once_both_end_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = _start(url), _start(url)
    for process in (first, second):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.strip() == migrate.head_revision()
    assert migrate.current_revision(create_engine(url)) == migrate.head_revision()
