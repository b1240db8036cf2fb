"""Fixtures of the dashboard tests: a SQLite ledger with an `http` sink aimed at a Recorder, and the app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from connector.config import Settings
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from tests.dashboard.support import basic, dashboard_app
from tests.delivery_support import drain, engine_settings
from tests.support.recorder import Recorder


@dataclass
class Dash:
    """The app with the dashboard, its ledger and settings, and a way to run the worker."""

    app: Flask
    client: FlaskClient
    ledger: Ledger
    settings: Settings
    recorder: Recorder
    mapping: Path

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get("/dashboard" + path, headers=basic(), **kwargs)

    def break_mapping(self) -> None:
        """A mapping writing a property the endpoint refuses: deliveries dead-letter at once (400)."""
        document = yaml.safe_load(default_mapping_path("hubspot").read_text())
        document["activity"]["properties"]["reject_me"] = True
        self.mapping.write_text(yaml.safe_dump(document))

    def fix_mapping(self) -> None:
        self.mapping.write_text(default_mapping_path("hubspot").read_text())

    def deliver(self) -> int:
        """Run a worker with the mapping as it is now until nothing is due."""
        worker = Worker(self.settings, ledger=self.ledger)
        worker.open()
        try:
            return drain(worker)
        finally:
            worker.close()


@pytest.fixture
def dash(tmp_path: Path, recorder: Recorder) -> Iterator[Dash]:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(default_mapping_path("hubspot").read_text())
    settings = engine_settings(f"sqlite:///{tmp_path / 'dash.db'}", recorder.url, mapping=str(mapping))
    ledger = Ledger.open(settings.store)
    app = dashboard_app(settings, ledger)
    yield Dash(app, app.test_client(), ledger, settings, recorder, mapping)
    ledger.dispose()
