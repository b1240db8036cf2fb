"""Fixtures of the dashboard tests: a SQLite ledger with an `http` sink aimed at a Recorder, and the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.default_mappings import default_mapping_path
from connector.ledger import Ledger
from tests.support.dashboard import Dash, dashboard_app
from tests.support.delivery import engine_settings
from tests.support.recorder import Recorder


@pytest.fixture
def dash(tmp_path: Path, recorder: Recorder) -> Iterator[Dash]:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(default_mapping_path("hubspot").read_text())
    settings = engine_settings(f"sqlite:///{tmp_path / 'dash.db'}", recorder.url, mapping=str(mapping))
    ledger = Ledger.open(settings.store)
    app = dashboard_app(settings, ledger)
    yield Dash(app, app.test_client(), ledger, settings, recorder, mapping)
    ledger.dispose()
