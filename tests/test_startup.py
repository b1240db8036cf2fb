"""connector.ops.startup without a server: the start-up block's sink states and hidden password, the store checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from connector.config import parse_settings
from connector.ops.startup import StartupError, check_port, check_store_path, startup_block, store_display
from connector.sink_health import Condition, SinkCondition
from tests.support.settings import TOKEN


def _settings(store_url: str, **extra: object):
    return parse_settings(
        {
            "receiver": {"auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
            "store": {"url": store_url},
            "sinks": {"crm": {"type": "http", "url": "http://127.0.0.1:9"}},
            **extra,
        },
        source="<test>",
        base_dir=Path("."),
        environ={},
    )


def test_the_block_shows_each_sink_state_with_its_fix_and_hides_the_store_password() -> None:
    settings = _settings(
        "postgresql+psycopg://connector:s3cret-pw@db.internal:5432/connector",
        worker={"embedded": False},
        dashboard={"enabled": False},
    )
    sinks = {
        "crm": SinkCondition(
            "crm",
            True,
            (
                Condition("paused", "credentials rejected: 401", "connector validate --config /etc/c.yaml"),
                Condition(
                    "missing_fields",
                    "the CRM lacks fields Contact.X: run `connector crm-setup --config /etc/c.yaml --sink crm`",
                    "connector crm-setup --config /etc/c.yaml --sink crm",
                ),
            ),
        )
    }
    block = startup_block(settings, host="127.0.0.1", port=8080, workers=3, sinks=sinks)
    assert "listening on http://127.0.0.1:8080 (3 receiver processes)" in block
    assert "Store       : postgresql+psycopg://connector:***@db.internal:5432/connector" in block
    assert "s3cret-pw" not in block and TOKEN not in block
    assert (
        "Sinks       : crm (http): paused: credentials rejected: 401 (fix: connector validate --config "
        "/etc/c.yaml); missing fields: the CRM lacks fields Contact.X: run `connector crm-setup --config "
        "/etc/c.yaml --sink crm`"
    ) in block  # a reason naming its command is not followed by it again
    assert "Dashboard   : off (dashboard.enabled is false)" in block
    assert "Worker      : external (worker.embedded is false): run `connector worker --config" in block


def test_store_display_never_shows_a_password() -> None:
    assert store_display("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert store_display("sqlite:///relative.db") == "sqlite:///relative.db"


def test_a_missing_store_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="the store's directory .*nowhere does not exist"):
        check_store_path(_settings(f"sqlite:///{tmp_path / 'nowhere' / 'c.db'}").store)
    check_store_path(_settings(f"sqlite:///{tmp_path / 'c.db'}").store)  # writable: no error


def test_a_port_in_use_is_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again
