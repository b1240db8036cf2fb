"""connector.ops.startup without a server: the start-up block's sink states and hidden password, the store and port
checks, and serve's --port and --workers refused out of range before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from connector.cli import main
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
    assert "Retention   : off: every call's phone number, name and transcript is kept until purged" in block


def test_the_block_says_whether_anything_purges_stored_calls() -> None:
    def retention_line(**extra: object) -> str:
        settings = parse_settings(
            {"receiver": {"auth": {"tokens": [TOKEN]}}, "store": {"url": "sqlite:///c.db", "retention_days": 90}}
            | extra,
            source="<test>",
            base_dir=Path("."),
            environ={},
        )
        block = startup_block(settings, host="127.0.0.1", port=8080, workers=1, sinks={})
        return next(line for line in block.splitlines() if line.startswith("  Retention"))

    assert retention_line(sinks={"crm": {"type": "http", "url": "http://127.0.0.1:9"}}).endswith(
        "90 days (the workers purge older settled calls hourly)"
    )
    # No sink, no worker: nothing would ever purge, so the block says what to run instead.
    assert "90 days, but no worker runs here (no sink): run `connector purge --config" in retention_line()


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


@pytest.mark.parametrize("port", [0, 65536, 99999, -1])
def test_a_port_that_is_no_tcp_port_is_a_startup_error(port: int) -> None:
    """The socket module raises OverflowError for these: a traceback instead of a sentence."""
    with pytest.raises(StartupError, match=f"port {port} is not a TCP port \\(1-65535\\)"):
        check_port("127.0.0.1", port)


def test_a_host_the_socket_module_refuses_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="cannot listen on '127.0.0.1\\\\x00' "):
        check_port("127.0.0.1\x00", 8080)  # a TypeError from bind, not an OSError


@pytest.mark.parametrize("flag", [["--port", "99999"], ["--port", "0"], ["--workers", "0"], ["--workers", "65"]])
def test_serve_refuses_a_port_or_worker_count_out_of_range(tmp_path: Path, flag: list[str]) -> None:
    """`--port 99999` ended in an OverflowError traceback, and `--port 0` or `--workers 0` quietly became the
    config's value (while `serve.workers: 0` in the config is refused)."""
    store = tmp_path / "s.db"
    with socket.socket() as taken:  # a flag let through would stop serve here ("already in use"), never serve
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = tmp_path / "c.yaml"
        receiver = {"port": taken.getsockname()[1], "auth": {"tokens": [TOKEN]}}
        config.write_text(yaml.safe_dump({"receiver": receiver, "store": {"url": f"sqlite:///{store}"}}))
        result = CliRunner().invoke(main, ["serve", "--config", str(config), *flag], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag[0]}': {flag[1]} is not in the range" in result.stderr
    assert not store.exists()


def test_validate_warns_about_a_sink_url_that_is_plain_http_to_another_machine(tmp_path: Path) -> None:
    """A corporate proxy configured as `http://…` would carry every transcript and the access token in clear text.
    An emulator on this machine is fine; so is https. A warning, not a refusal (validate still exits 0)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": [TOKEN]}},
                "store": {"url": f"sqlite:///{tmp_path}/c.db"},
                "sinks": {
                    "proxied": {"type": "hubspot", "access_token": "x", "base_url": "HTTP://proxy.corp:3128"},
                    "emulator": {"type": "hubspot", "access_token": "x", "base_url": "http://127.0.0.1:9"},
                    "real": {"type": "hubspot", "access_token": "x"},
                    "off": {"type": "hubspot", "access_token": "x", "base_url": "http://old.corp", "enabled": False},
                },
            }
        )
    )
    result = CliRunner().invoke(main, ["validate", "--offline", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0
    warned = [line for line in result.stderr.splitlines() if "plain http://" in line]
    assert warned == [
        "warning: sinks.proxied.base_url is plain http:// to proxy.corp: call data (phone numbers, names, "
        "transcripts) and the sink's credentials would cross the network unencrypted; use https://"
    ]
