"""A store restored from a backup: what was delivered after the backup was taken is not written twice once
`connector after-restore` has run (docs/operations.md, Backups). A real SQLite online backup (the one the
operations guide shows), a real worker and a recording endpoint that creates a second record for a second write."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from connector.cli import main
from connector.default_mappings import default_mapping_path
from tests.support.delivery import drain, engine_settings, ingest, statuses, worker_on
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN

REASONS = ["schedule_call_back", "hung_up", "no_answer", "schedule_call_back", "not_interested"]


def config_file(folder: Path, store_url: str, recorder: Recorder) -> Path:
    path = folder / "restore.yaml"
    sink = {
        "type": "http",
        "url": recorder.url,
        "mapping": str(default_mapping_path("hubspot")),
        "headers": {"Authorization": f"Bearer {recorder.token}"},
    }
    document = {"receiver": {"auth": {"tokens": [TOKEN]}}, "store": {"url": store_url}, "sinks": {"rec": sink}}
    path.write_text(yaml.safe_dump(document))
    return path


def online_backup(database: Path, copy: Path) -> None:
    """What `sqlite3 connector.db ".backup copy.db"` does, while the store is open."""
    with sqlite3.connect(database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    target.close()
    source.close()


def restore(copy: Path, database: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, database)


@pytest.mark.parametrize("after_restore", [True, False], ids=["after-restore", "without"])
def test_a_restored_backup_writes_nothing_twice_after_after_restore(
    tmp_path: Path, recorder: Recorder, after_restore: bool
) -> None:
    database = tmp_path / "connector.db"
    store_url = f"sqlite:///{database}"
    settings = engine_settings(store_url, recorder.url)
    with worker_on(settings) as (ledger, worker):
        ids = [
            ingest(ledger, 600 + i, end_reason=reason, record_phone_number=f"+1202555{4300 + i}")
            for i, reason in enumerate(REASONS)
        ]
        online_backup(database, tmp_path / "backup.db")  # taken before anything was delivered
        drain(worker)
        assert all(statuses(ledger, e) == ["succeeded"] for e in ids)
    delivered = recorder.keys()
    assert recorder.duplicates() == {} and any(":task:" in k for k in delivered)

    restore(tmp_path / "backup.db", database)
    if after_restore:
        result = CliRunner().invoke(
            main, ["after-restore", "--config", str(config_file(tmp_path, store_url, recorder))]
        )
        assert result.exit_code == 0, result.output
        assert result.stderr.startswith(f"{len(delivered)} actions of {len(ids)} deliveries not recorded as succeeded")
    with worker_on(settings) as (ledger, worker):
        assert all(statuses(ledger, e) == ["pending"] for e in ids)  # what the backup shows
        drain(worker)
        assert all(statuses(ledger, e) == ["succeeded"] for e in ids)
    twice = recorder.duplicates()
    if after_restore:
        assert twice == {} and recorder.keys() == delivered
    else:  # what the operations guide used to promise without the command: every call logged again
        assert {k for k in twice if k.endswith(":activity")} == {f"2x-{e}:activity" for e in ids}


def test_hubspot_a_restored_backup_logs_no_call_twice_and_creates_no_contact_twice(tmp_path: Path) -> None:
    """The same through hubspot-api-client and the HubSpot emulator: new numbers (contacts created after the backup),
    a backlog (batch path); every call once, every contact once, every callback task once."""
    import time

    from connector.emulators.hubspot.server import HubSpotEmulator
    from connector.ops.restore import mark_after_restore
    from tests.support.hubspot import TOKEN as HS_TOKEN
    from tests.support.hubspot import engine_settings as hubspot_settings

    with HubSpotEmulator(
        tokens=[HS_TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as portal:
        settings = hubspot_settings(portal, tmp_path)
        database = tmp_path / "ledger.db"
        with worker_on(settings) as (ledger, worker):
            ids = [
                ingest(ledger, 700 + i, sinks=("hs",), end_reason=reason, record_phone_number=f"+1312555{4400 + i}")
                for i, reason in enumerate(REASONS)
            ]
            online_backup(database, tmp_path / "backup.db")
            drain(worker)
        before = {kind: len(portal.objects(kind)) for kind in ("calls", "contacts", "tasks")}
        restore(tmp_path / "backup.db", database)
        with worker_on(settings) as (ledger, worker):
            assert mark_after_restore(ledger, settings).marked > 0
            started = time.monotonic()
            deadline = started + 30
            while time.monotonic() < deadline and not all(statuses(ledger, e) == ["succeeded"] for e in ids):
                drain(worker)
                time.sleep(0.2)
            assert all(statuses(ledger, e) == ["succeeded"] for e in ids)
        assert {kind: len(portal.objects(kind)) for kind in ("calls", "contacts", "tasks")} == before
