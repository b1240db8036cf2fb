"""The `connector` command through click's runner: validate, status, quarantine list/show/replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from connector.cli import main
from connector.sample import sample_payload
from tests.support.serving import Served

JSON = "application/json"


@pytest.fixture
def config_file(tmp_path: Path, served_sqlite: Served) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": [served_sqlite.token]}},
                "store": {"url": served_sqlite.settings.store.url},
            }
        )
    )
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def send(served: Served, body: bytes, content_type: str = JSON) -> requests.Response:
    return requests.post(
        served.url, data=body, timeout=10, headers={"Content-Type": content_type, "Authorization": served.token}
    )


def test_validate_reports_ok_and_problems(tmp_path: Path, config_file: Path) -> None:
    code, out, err = run("validate", "--config", str(config_file))
    assert code == 0 and out.startswith("OK: ") and "OK" not in err  # the verdict is output, not a diagnostic
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "receiver: {auth: {tokens: []}, port: 0}\nsinks: {h: {type: hubspot, access_token: x, mapping: nope.yaml}}\n"
    )
    code, _, err = run("validate", "--offline", "--config", str(bad))
    assert code == 1
    assert "receiver.auth.tokens" in err and "receiver.port" in err


def test_validate_names_a_missing_mapping_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "receiver: {auth: {tokens: [t]}}\nsinks: {h: {type: hubspot, access_token: x, mapping: nope.yaml}}\n"
    )
    code, _, err = run("validate", "--offline", "--config", str(path))
    assert code == 1 and "sinks.h.mapping: file not found: nope.yaml" in err


@pytest.mark.parametrize("problem", ["dashboard password is the token", "plugin sink without a mapping"])
def test_validate_refuses_what_serve_refuses_and_both_name_the_config_file(tmp_path: Path, problem: str) -> None:
    """validate said OK to a dashboard password equal to the webhook token, which serve then refused; and serve
    named `<config>`, not the file, for it and for a plugin sink without a mapping."""
    document: dict[str, object] = {
        "receiver": {"auth": {"tokens": ["t" * 32]}},
        "store": {"url": f"sqlite:///{tmp_path / 's.db'}"},
    }
    if problem == "dashboard password is the token":
        document["dashboard"] = {"password": "t" * 32}
        expected = "dashboard.password: must differ from the webhook token"
    else:
        document["sinks"] = {"rec": {"type": "http", "url": "http://127.0.0.1:9"}}
        expected = "sinks.rec.mapping: required for a plugin sink"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(document))
    for command in (["validate", "--offline"], ["serve"]):
        code, out, err = run(*command, "--config", str(config))
        assert code == 1 and out == "", command
        assert f"Error: {config}: 1 problem(s)" in err and expected in err, (command, err)
    assert not (tmp_path / "s.db").exists()


def test_status_shows_the_stored_event(served_sqlite: Served, config_file: Path) -> None:
    document = sample_payload(31337, end_reason="callback")
    assert send(served_sqlite, json.dumps(document).encode()).status_code == 202
    code, out, _ = run("status", "--json", "--config", str(config_file), "31337")
    assert code == 0
    report = json.loads(out)
    assert json.loads(report["body"]) == document
    assert report["normalized"]["call"]["end_reason"]["value"] == "schedule_call_back"
    code, _, err = run("status", "--config", str(config_file), "404404")
    assert code == 1 and "no event with id '404404'" in err


def test_quarantine_list_show_and_replay(served_sqlite: Served, config_file: Path) -> None:
    good_json_wrong_type = json.dumps(sample_payload(808)).encode()
    assert send(served_sqlite, good_json_wrong_type, "text/plain").status_code == 415
    assert send(served_sqlite, b'{"id": 9, "call": {"duration": -3}}').status_code == 422

    code, out, _ = run("quarantine", "list", "--config", str(config_file))
    listed = json.loads(out)
    assert code == 0 and [q["code"] for q in listed] == ["validation_failed", "unsupported_media_type"]
    refused_id, media_id = listed[0]["id"], listed[1]["id"]

    code, out, _ = run("quarantine", "show", "--config", str(config_file), str(media_id))
    assert code == 0 and json.loads(json.loads(out)["body"])["id"] == 808

    # The 415 body is a valid call record: replaying it (the sender's header was the problem) stores it.
    code, out, _ = run("quarantine", "replay", "--config", str(config_file), str(media_id))
    assert code == 0
    assert json.loads(out) == [
        {"quarantine_id": media_id, "status": 202, "result": "accepted as event 808", "event_id": "808"}
    ]
    assert served_sqlite.ledger.get_event("808") is not None

    # The 422 body is still refused by today's code: it stays in quarantine, annotated.
    code, out, _ = run("quarantine", "replay", "--config", str(config_file), "--all")
    assert code == 1
    assert json.loads(out)[0]["status"] == 422
    remaining = served_sqlite.ledger.list_quarantine()
    assert [(q["id"], q["replay_result"]) for q in remaining] == [(refused_id, "still refused: 422 validation_failed")]

    # Replaying the accepted one again is harmless: already settled, and a second replay is a duplicate.
    code, out, _ = run("quarantine", "replay", "--config", str(config_file), str(media_id))
    assert json.loads(out)[0]["status"] == 200
    assert served_sqlite.ledger.count_events() == 1


def test_quarantine_commands_refuse_bad_limits_and_agree_on_exit_statuses(
    served_sqlite: Served, config_file: Path
) -> None:
    """`--limit 0` said "quarantine is empty" and `--limit -1` listed everything; `quarantine replay` without
    ids said "nothing to replay" (exit 0); `replay --quarantine` exited 0 when every body was still refused,
    where `quarantine replay ID` exits 1."""
    config = str(config_file)
    for event_id in (1, 2):
        assert send(served_sqlite, json.dumps({"id": event_id, "call": "x"}).encode()).status_code == 422
    for limit in ("0", "-1"):
        code, out, err = run("quarantine", "list", "--config", config, "--limit", limit)
        assert code == 2 and out == "" and f"Invalid value for '--limit': {limit} is not in the range x>=1" in err
    code, out, _ = run("quarantine", "list", "--config", config, "--limit", "1")
    assert code == 0 and len(json.loads(out)) == 1
    code, out, err = run("quarantine", "replay", "--config", config)
    assert code == 2 and out == "" and "give the quarantine ids to replay, or --all" in err
    code, out, _ = run("replay", "--config", config, "--quarantine")
    assert code == 1 and json.loads(out)["replayed"] == 2 and json.loads(out)["accepted"] == 0
    code, out, _ = run("quarantine", "replay", "--config", config, str(json.loads(out)["results"][0]["quarantine_id"]))
    assert code == 1 and json.loads(out)[0]["status"] == 422


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    """It said "store schema is up to date" on an empty store, after an upgrade and when nothing was to do."""
    from connector.ledger.migrate import head_revision
    from tests.support.ledger import store_one_revision_behind

    head = head_revision()
    for name in ("new.db", "old.db"):
        config = tmp_path / f"{name}.yaml"
        url = f"sqlite:///{tmp_path / name}"
        config.write_text(yaml.safe_dump({"receiver": {"auth": {"tokens": ["t" * 32]}}, "store": {"url": url}}))
        expected = f"created the store schema (revision {head})"
        if name == "old.db":
            expected = f"upgraded the store schema {store_one_revision_behind(url)} -> {head}"
        code, out, err = run("migrate", "--config", str(config))
        assert code == 0 and out == "" and err.strip() == expected
        code, _, err = run("migrate", "--config", str(config))
        assert code == 0 and err.strip() == f"the store schema is already up to date (revision {head})"


def test_send_sample_posts_an_accepted_event(served_sqlite: Served) -> None:
    code, out, _ = run("send-sample", "--url", served_sqlite.url, "--token", served_sqlite.token, "--id", "555")
    assert code == 0 and out.startswith("HTTP 202")
    assert served_sqlite.ledger.get_event("555") is not None
    code, out, _ = run("send-sample", "--url", served_sqlite.url, "--token", "wrong")
    assert code == 1 and out.startswith("HTTP 401")


def test_commands_need_a_config(tmp_path: Path) -> None:
    code, _, err = run("status", "1")
    assert code == 2 and "--config" in err


def test_validate_checks_the_mapping_against_a_reachable_crm(tmp_path: Path) -> None:
    from connector.emulators.hubspot.server import HubSpotEmulator

    with HubSpotEmulator(seed_custom_properties=False) as emulator:
        path = tmp_path / "c.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "receiver": {"auth": {"tokens": ["t"]}},
                    "sinks": {
                        "hs": {"type": "hubspot", "access_token": "sandbox-hubspot-token", "base_url": emulator.url}
                    },
                }
            )
        )
        code, _, err = run("validate", "--config", str(path))
        assert (
            code == 1
            and "twox_do_not_call" in err
            and f"connector crm-setup --config {path.resolve()} --sink hs" in err
        )
        code, out, _ = run("crm-setup", "--config", str(path), "--no-ledger-questions")
        assert code == 0 and "twox_do_not_call" in out
        code, _, err = run("validate", "--config", str(path))
        assert code == 0, err


def test_salesforce_crm_setup_prepares_the_org_and_validate_checks_it(tmp_path: Path) -> None:
    from connector.emulators.salesforce.server import SalesforceEmulator

    with SalesforceEmulator(with_custom_fields=False) as org:
        path = tmp_path / "sf.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "receiver": {"auth": {"tokens": ["t"]}},
                    "sinks": {
                        "crm": {
                            "type": "salesforce",
                            "instance_url": org.instance_url,
                            "auth": {"session_id": org.session_id},
                            "ca_bundle": org.ca_file,
                        }
                    },
                }
            )
        )
        setup = ("crm-setup", "--config", str(path), "--no-ledger-questions")
        code, _, err = run("validate", "--config", str(path))
        assert code == 1 and "TwoX_Wrong_Number__c" in err and f"crm-setup --config {path.resolve()} --sink crm" in err
        org.set_user_permissions(customize_application=False, manage_users=False)
        code, out, err = run(*setup)
        assert code == 1 and "not allowed" in err and "Fields & Relationships → New" in err
        assert json.loads(out)["ok"] is False and org.custom_fields() == []
        org.set_user_permissions()
        code, out, err = run(*setup, "--dry-run", "--out", str(tmp_path / "pkg"))
        assert code == 0 and "Would create 12 field(s)" in err and org.custom_fields() == []
        assert (tmp_path / "pkg" / "package.xml").exists()
        code, out, err = run(*setup)
        assert code == 0 and "Created 12 field(s)" in err and len(json.loads(out)["granted"]) == 12
        code, _, err = run("validate", "--config", str(path))
        assert code == 0, err
        code, out, err = run(*setup)
        assert code == 0 and "nothing to do" in err and json.loads(out)["created"] == []


def _config_with_secrets_from_env(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": ["${CLI_TEST_WEBHOOK_TOKEN}"]}},
                "store": {"url": store_url},
                "sinks": {"hs": {"type": "hubspot", "access_token": "${CLI_TEST_HUBSPOT_TOKEN}"}},
            }
        )
    )
    return path


def test_reading_the_ledger_needs_no_secret_in_the_environment(
    tmp_path: Path, served_sqlite: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLI_TEST_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("CLI_TEST_HUBSPOT_TOKEN", raising=False)
    assert send(served_sqlite, json.dumps(sample_payload(4242)).encode()).status_code == 202
    assert send(served_sqlite, b'{"id": 1, "call": "x"}').status_code == 422
    config = str(_config_with_secrets_from_env(tmp_path, served_sqlite.settings.store.url))
    code, out, err = run("status", "--config", config, "4242")
    assert code == 0 and "Event 4242" in out, err
    code, out, err = run("status", "--json", "--config", config)
    assert code == 0 and "hs" in json.loads(out)["sinks"], err
    code, out, err = run("quarantine", "list", "--config", config)
    assert code == 0 and json.loads(out)[0]["code"] == "validation_failed", err
    code, out, err = run("quarantine", "show", "--config", config, str(json.loads(out)[0]["id"]))
    assert code == 0 and json.loads(out)["code"] == "validation_failed", err
    for command in (("validate", "--offline"), ("serve",)):  # what does use the secrets still refuses
        code, _, err = run(*command, "--config", config)
        assert code == 1, command
        assert "receiver.auth.tokens[0]: environment variable CLI_TEST_WEBHOOK_TOKEN is not set" in err, command
        assert "sinks.hs.access_token: environment variable CLI_TEST_HUBSPOT_TOKEN is not set" in err, command


def test_reading_the_ledger_needs_only_the_store_section(tmp_path: Path, served_sqlite: Served) -> None:
    """As docs/configuration.md says; a config with only `store:` failed with "receiver: Field required"."""
    assert send(served_sqlite, json.dumps(sample_payload(4343)).encode()).status_code == 202
    assert send(served_sqlite, b'{"id": 1, "call": "x"}').status_code == 422
    config = tmp_path / "store-only.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": served_sqlite.settings.store.url}}))
    code, out, err = run("status", "--config", str(config), "4343")
    assert code == 0 and "Event 4343" in out, err
    code, out, err = run("status", "--json", "--config", str(config))
    assert code == 0 and json.loads(out)["sinks"] == {}, err
    code, out, err = run("quarantine", "list", "--config", str(config))
    assert code == 0 and json.loads(out)[0]["code"] == "validation_failed", err
    code, out, err = run("quarantine", "show", "--config", str(config), str(json.loads(out)[0]["id"]))
    assert code == 0 and json.loads(out)["code"] == "validation_failed", err
    code, _, err = run("validate", "--offline", "--config", str(config))  # what does receive still needs it
    assert code == 1 and "receiver: Field required" in err


def test_an_empty_secret_is_one_clear_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLI_TEST_WEBHOOK_TOKEN", "")
    monkeypatch.setenv("CLI_TEST_HUBSPOT_TOKEN", "")
    config = str(_config_with_secrets_from_env(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    code, _, err = run("validate", "--offline", "--config", config)
    assert code == 1
    assert "receiver.auth.tokens[0]: environment variable CLI_TEST_WEBHOOK_TOKEN is set but empty" in err
    assert "sinks.hs.access_token: environment variable CLI_TEST_HUBSPOT_TOKEN is set but empty" in err
    assert "2 problem(s)" in err  # one per cause: not also "a token is empty" for the same value
    monkeypatch.setenv("CLI_TEST_WEBHOOK_TOKEN", "t")
    monkeypatch.setenv("CLI_TEST_HUBSPOT_TOKEN", "   ")
    code, _, err = run("validate", "--offline", "--config", config)
    assert code == 1 and "sinks.hs.access_token" in err and "empty" in err


def test_crm_setup_leaves_no_store_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set-up usually runs before the first `serve`: reading question names must not create `connector.db`."""
    from connector.emulators.hubspot.server import HubSpotEmulator

    monkeypatch.chdir(tmp_path)
    with HubSpotEmulator(seed_custom_properties=False) as emulator:
        path = tmp_path / "c.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "receiver": {"auth": {"tokens": ["t"]}},
                    "sinks": {
                        "hs": {"type": "hubspot", "access_token": "sandbox-hubspot-token", "base_url": emulator.url}
                    },
                }
            )
        )
        for flags in ((), ("--no-ledger-questions",), ("--dry-run",)):
            code, out, err = run("crm-setup", "--config", str(path), *flags)
            assert code == 0, err
            assert "twox_do_not_call" in out
            assert list(tmp_path.glob("connector.db*")) == [], flags


@pytest.mark.parametrize("command", [["status"], ["quarantine", "list"], ["quarantine", "show", "1"]])
def test_reading_commands_say_what_is_wrong_with_a_store_that_is_missing_or_not_set_up(
    tmp_path: Path, command: list[str]
) -> None:
    """They said 'store unavailable while trying to all: OperationalError', and left an empty database behind."""
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"receiver": {"auth": {"tokens": ["t" * 32]}}, "store": {"url": "sqlite:///l.db"}})
    )
    code, _, err = run(*command, "--config", str(config))
    assert code == 1
    assert f"no store at sqlite:///{tmp_path / 'l.db'}: nothing was received there yet" in err
    assert not (tmp_path / "l.db").exists()
    import sqlite3

    sqlite3.connect(tmp_path / "l.db").close()  # a file, never migrated
    code, _, err = run(*command, "--config", str(config))
    assert code == 1
    assert "the store's schema is not at the current revision; run `connector migrate" in err
