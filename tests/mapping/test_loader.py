"""Mapping files: every problem at once with its line, templates checked at load, safety rules enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connector.default_mappings import default_mapping_path
from connector.errors import ConfigError
from connector.mapping.lint import lint
from connector.mapping.loader import load_mapping, parse_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import CreateActivity
from connector.sample import sample_payload

BASE = default_mapping_path("hubspot").read_text()


def with_changes(edit) -> str:
    document = yaml.safe_load(BASE)
    edit(document)
    return yaml.safe_dump(document, sort_keys=False)


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        parse_mapping(text, source="m.yaml")
    return {p.path: p.message for p in exc.value.problems}


def test_default_mappings_load_without_warnings() -> None:
    for crm in ("hubspot", "salesforce"):
        assert lint(load_mapping(default_mapping_path(crm))) == []


def test_unknown_keys_are_errors_with_path_and_line() -> None:
    text = BASE.replace("  if_no_match: create", "  if_sevral: newest\n  if_no_match: create", 1)
    found = problems_of(text)
    [(path, message)] = found.items()
    line = text.splitlines().index("  if_sevral: newest") + 1
    assert path == f"contact.if_sevral (line {line})"
    assert "Extra inputs" in message


def test_all_problems_are_reported_together() -> None:
    def edit(d: dict) -> None:
        d["contact"]["if_no_match"] = "maybe"
        d["outcomes"][0]["rank"] = "high"
        d["activity"].pop("object")

    found = problems_of(with_changes(edit))
    assert {p.split(" ")[0] for p in found} == {"contact.if_no_match", "outcomes[0].rank", "activity.object"}


def test_template_syntax_errors_name_the_line() -> None:
    text = BASE.replace('hs_call_title: "2X call: {{ outcome.label }}"', 'hs_call_title: "2X call: {{ outcome.label }"')
    found = problems_of(text)
    line = next(
        i for i, row in enumerate(text.splitlines(), 1) if "hs_call_title" in row and '{{ outcome.label }"' in row
    )
    assert list(found) == [f"activity.properties.hs_call_title (line {line})"]
    assert "syntax error" in next(iter(found.values()))


def test_unknown_filter_is_caught_at_load() -> None:
    text = BASE.replace("{{ call_time | iso_utc }}", "{{ call_time | iso_utcc }}", 1)
    assert any("iso_utcc" in m for m in problems_of(text).values())


def test_do_not_call_can_only_be_set_true() -> None:
    def edit(d: dict) -> None:
        d["outcomes"][4]["contact"]["twox_do_not_call"] = False
        d["contact_updates"]["twox_do_not_call"] = "{{ call.answered }}"

    found = problems_of(with_changes(edit))
    assert {p.split(" ")[0] for p in found} == {
        "outcomes[4].contact.twox_do_not_call",
        "contact_updates.twox_do_not_call",
    }
    assert all("never clears do-not-call" in m for m in found.values())


def test_non_canonical_end_reasons_are_rejected_with_a_hint() -> None:
    def edit(d: dict) -> None:
        d["outcomes"][4]["when"]["end_reason"] = "transferred"
        d["outcomes"][5]["when"]["end_reason"] = "schedule_callbak"

    found = problems_of(with_changes(edit))
    messages = sorted(found.values())
    assert any("use call_transferred" in m for m in messages)
    assert any("did you mean schedule_call_back" in m for m in messages)


def test_a_task_reference_must_exist() -> None:
    def edit(d: dict) -> None:
        d["outcomes"][5]["tasks"] = ["call_me"]

    assert any("call_me" in m for m in problems_of(with_changes(edit)).values())


def test_a_template_failing_on_one_payload_leaves_its_field_out_and_names_the_line(tmp_path: Path) -> None:
    """It used to be a MappingError for the whole call: a do-not-call whose optional title read a `meta` key the call
    lacked was dead-lettered, and the flag never reached the CRM."""
    text = BASE.replace(
        'hs_call_title: "2X call: {{ outcome.label }}"', 'hs_call_title: "2X call for {{ meta.campaign_name }}"'
    )
    mapping = parse_mapping(text, source="custom.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "meta.campaign_name" in row)
    event = parse_webhook(sample_payload(1, end_reason="do_not_call"))
    plan = plan_event(event, mapping, sink="h", call_time=datetime.now(UTC))
    [activity] = [a for a in plan.actions if isinstance(a, CreateActivity)]
    assert "hs_call_title" not in activity.properties and activity.properties["hs_call_body"]
    assert plan.do_not_call
    [warning] = [w for w in plan.warnings if w.startswith("hs_call_title left out")]
    assert f"custom.yaml:{line} (activity.properties.hs_call_title)" in warning and "campaign_name" in warning
    # The same mapping writes the title for a payload that has the key.
    event = parse_webhook(sample_payload(1, meta={"campaign_name": "fall"}))
    [activity] = [a for a in plan_event(event, mapping, sink="h", call_time=datetime.now(UTC)).actions[1:2]]
    assert isinstance(activity, CreateActivity) and activity.properties["hs_call_title"] == "2X call for fall"


def test_lint_warns_about_uncovered_outcomes_shadowed_dnc_and_unknown_fields() -> None:
    def edit(d: dict) -> None:
        d["outcomes"] = [o for o in d["outcomes"] if o["name"] != "no_answer"]
        dnc = next(o for o in d["outcomes"] if o["name"] == "do_not_call")
        d["outcomes"].remove(dnc)
        d["outcomes"].append(dnc)  # now invalid_number/unreachable win for failed DNC calls
        d["activity"]["properties"]["hs_call_title"] = "{{ record.first_nmae | default('') }}"  # guarded

    warnings = lint(parse_mapping(with_changes(edit), source="m.yaml"))
    assert any("end_reason no_answer" in w for w in warnings)
    assert any("do_not_call call" in w and "does not set do-not-call" in w for w in warnings)
    assert any("`record.first_nmae`" in w for w in warnings)


@pytest.mark.parametrize(
    ("template", "read"),
    [
        ("{{ outcome.nmae }}", "outcome.nmae"),
        ("{{ recrod.first_name }}", "recrod.first_name"),
        ("Call: {{ call.end_reasn.value }}", "call.end_reasn.value"),
    ],
)
def test_a_template_that_fails_for_every_call_is_an_error(template: str, read: str) -> None:
    """It was a warning: validate said OK, serve started, and every call dead-lettered (UndefinedError)."""

    def edit(d: dict) -> None:
        d["contact_updates"]["twox_last_call_outcome"] = template

    problems = problems_of(with_changes(edit))
    [(path, message)] = problems.items()
    assert path.startswith("contact_updates.twox_last_call_outcome (line ")
    assert message == f"template reads `{read}`, which is not a field of the call: every call fails"


@pytest.mark.parametrize("phone", ["+1...", "12345", "+1202555\u00000143", None])
def test_if_no_phone_decides_what_a_call_without_a_usable_number_does(phone: str | None) -> None:
    """With the default (`create`) each such call created another contact without a phone (2X's own sample sends
    `+1...`); `hold` keeps the event for review, `skip` logs the call without a contact."""
    from connector.plan import HoldForReview, ResolveContact

    event = parse_webhook(sample_payload(1, record_phone_number=phone))
    assert event.record.phone.e164 is None

    def plan_with(choice: str | None):
        def edit(d: dict) -> None:
            if choice is None:
                d["contact"].pop("if_no_phone", None)
            else:
                d["contact"]["if_no_phone"] = choice

        mapping = parse_mapping(with_changes(edit), source="m.yaml")
        return plan_event(event, mapping, sink="h", call_time=datetime.now(UTC))

    [hold] = plan_with("hold").actions
    assert isinstance(hold, HoldForReview) and "no usable phone number" in hold.reason
    for choice, expected in ((None, "create"), ("create", "create"), ("skip", "skip")):
        resolve = plan_with(choice).actions[0]
        assert isinstance(resolve, ResolveContact) and resolve.match == [] and resolve.on_no_match == expected
    # A usable number (or a CRM id in meta) is matched as always, whatever if_no_phone says
    with_number = parse_webhook(sample_payload(1, record_phone_number="+12025550143"))

    def held(d: dict) -> None:
        d["contact"]["if_no_phone"] = "hold"

    mapping = parse_mapping(with_changes(held), source="m.yaml")
    resolve = plan_event(with_number, mapping, sink="h", call_time=datetime.now(UTC)).actions[0]
    assert isinstance(resolve, ResolveContact) and resolve.match and resolve.on_no_match == "create"


def test_lint_warns_about_an_unguarded_meta_read_and_not_a_guarded_one() -> None:
    text = BASE.replace(
        'hs_call_title: "2X call: {{ outcome.label }}"',
        "hs_call_title: \"{{ meta.campaign }} {{ question_fields.case | default('') }}\"",
    )
    warnings = [w for w in lint(parse_mapping(text, source="m.yaml")) if "unguarded" in w]
    assert (
        len(warnings) == 1 and "`meta.campaign`" in warnings[0] and "(activity.properties.hs_call_title)" in warnings[0]
    )
    assert not [w for w in lint(parse_mapping(BASE, source="m.yaml")) if "unguarded" in w]


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("version: 1\noutcomes:\n  - name: a\n bad: 1\n", "line 4, column 2", "check this line's indentation"),
        ("version: 1\n\tcrm: hubspot\n", "line 2, column 1", "YAML indents with spaces, not tabs"),
    ],
)
def test_a_yaml_mistake_says_where_and_what_usually_causes_it(text: str, where: str, hint: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_mapping(text, source="m.yaml")
    [problem] = exc.value.problems
    assert problem.path == where and problem.message.startswith("not valid YAML: ") and hint in problem.message


def test_lint_names_an_outcome_no_call_can_reach_and_what_takes_its_calls() -> None:
    """`vm_any {end_reason: voicemail_detected}` above voicemail_left: validate said nothing, and no voicemail was
    ever logged as 'left'."""
    text = default_mapping_path("hubspot").read_text()
    at = text.index("  - name: voicemail_left")
    text = (
        text[:at]
        + "  - name: vm_any\n    label: VM\n    when: {end_reason: voicemail_detected}\n    rank: 20\n\n"
        + text[at:]
    )
    unreachable = [w for w in lint(parse_mapping(text, source="m.yaml")) if "can never be chosen" in w]
    assert [w.split(": outcome ")[1].split(" ")[0] for w in unreachable] == ["voicemail_left", "voicemail"]
    assert all("vm_any" in w for w in unreachable)
    assert not [w for w in lint(load_mapping(default_mapping_path("hubspot"))) if "can never be chosen" in w]
