"""`connector preview` and `connector validate` on mappings, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from connector.cli import main
from connector.default_mappings import default_mapping_path
from connector.sample import VENDOR_SAMPLE_VERBATIM

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_preview_of_the_vendor_sample_prints_a_plan_per_default_crm() -> None:
    code, out, _ = run("preview", str(EXAMPLES / "vendor-sample.json"), "--call-time", "2026-11-26T19:30:00+0000")
    assert code == 0
    plans = json.loads(out)
    assert [p["sink"] for p in plans] == ["hubspot", "salesforce"]
    hubspot = plans[0]
    assert hubspot["outcome"]["bundle"] == "transferred" and hubspot["do_not_call"] is False
    call = next(a for a in hubspot["actions"] if a["kind"] == "create_activity")
    assert call["properties"]["hs_call_external_id"] == "2x-123"


def test_preview_text_format_is_readable() -> None:
    code, out, _ = run(
        "preview",
        str(EXAMPLES / "do-not-call.json"),
        "--sink",
        "salesforce",
        "--format",
        "text",
        "--call-time",
        "2026-11-26T19:30:00+0000",
    )
    assert code == 0
    assert "Outcome: do_not_call" in out and "Do-not-call: YES" in out
    assert "DoNotCall = True   [sticky_true, rank 100]" in out


def test_preview_with_one_sink_prints_one_plan_and_a_callback_task() -> None:
    code, out, _ = run(
        "preview", str(EXAMPLES / "callback.json"), "--sink", "hubspot", "--call-time", "2026-11-26T19:30:00+0000"
    )
    plan = json.loads(out)
    task = next(a for a in plan["actions"] if a["kind"] == "create_task")
    assert task["due"] == "2026-11-27T15:00:00-05:00"


def test_preview_text_marks_the_callback_fields_a_do_not_call_contact_does_not_get() -> None:
    code, out, _ = run(
        "preview",
        str(EXAMPLES / "callback.json"),
        "--sink",
        "hubspot",
        "--format",
        "text",
        "--call-time",
        "2026-11-26T19:30:00+0000",
    )
    assert code == 0
    marked = [
        line.split(" = ")[0].strip() for line in out.splitlines() if "left out if the contact is do-not-call" in line
    ]
    assert marked == ["hs_lead_status", "twox_callback_due"]
    assert "not created if the contact is do-not-call" in out


def test_preview_of_a_sink_that_does_not_exist_is_a_usage_error_naming_the_known_ones() -> None:
    code, out, err = run("preview", str(EXAMPLES / "callback.json"), "--sink", "nosuch")
    assert (code, out) == (2, "")  # as every other command's unknown --sink
    assert "Invalid value for --sink: nosuch: no such sink; known: hubspot, salesforce" in err


def test_preview_of_the_verbatim_vendor_sample_says_exactly_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "verbatim.json"
    path.write_text(VENDOR_SAMPLE_VERBATIM)
    code, _, err = run("preview", str(path))
    assert code == 1
    assert "400 invalid_json" in err and "line 26, column 1" in err


def test_preview_with_a_config_uses_its_sinks_and_mapping_files(tmp_path: Path) -> None:
    custom = yaml.safe_load(default_mapping_path("hubspot").read_text())
    custom["outcomes"][4]["contact"]["hs_lead_status"] = "OPEN_DEAL"  # transferred
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(custom))
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": ["t"]}},
                "sinks": {"crm": {"type": "hubspot", "access_token": "x", "mapping": "mine.yaml"}},
            }
        )
    )
    code, out, _ = run("preview", "--config", str(config), str(EXAMPLES / "vendor-sample.json"))
    assert code == 0
    plan = json.loads(out)
    assert plan["sink"] == "crm"
    update = next(a for a in plan["actions"] if a["kind"] == "update_contact")
    assert {f["property"]: f["value"] for f in update["fields"]}["hs_lead_status"] == "OPEN_DEAL"


def test_validate_reports_mapping_errors_and_warnings(tmp_path: Path) -> None:
    broken = (
        default_mapping_path("hubspot")
        .read_text()
        .replace("rank: 100", "rank: high")
        .replace("{{ outcome.label }}", "{{ outcome.lable }}")
    )
    (tmp_path / "broken.yaml").write_text(broken)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": ["t"]}},
                "sinks": {"crm": {"type": "hubspot", "access_token": "x", "mapping": "broken.yaml"}},
            }
        )
    )
    code, _, err = run("validate", "--offline", "--config", str(config))
    assert code == 1 and "outcomes[0].rank" in err and "(line " in err

    # A read that fails for every call is an error; guarded (it renders for a sample call), a warning
    failing = default_mapping_path("hubspot").read_text().replace("{{ outcome.label }}", "{{ outcome.lable }}")
    (tmp_path / "broken.yaml").write_text(failing)
    code, _, err = run("validate", "--offline", "--config", str(config))
    assert code == 1 and "`outcome.lable`, which is not a field of the call: every call fails" in err
    warned = failing.replace("{{ outcome.lable }}", "{{ outcome.lable | default(outcome.label) }}")
    (tmp_path / "broken.yaml").write_text(warned)
    code, _, err = run("validate", "--offline", "--config", str(config))
    assert code == 0
    assert "outcome.lable" in err and "warning:" in err
