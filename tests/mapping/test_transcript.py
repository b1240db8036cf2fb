"""render_transcript: exact output per format, and that untrusted content can never become markup."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.mapping.transcript import DEFAULT_LABELS, render_transcript
from connector.payload import TranscriptTurn, parse_webhook
from connector.sample import sample_payload

TURNS = [
    {"role": "assistant", "content": "Hi, is John available?"},
    {"role": "user", "content": "Hello?"},
]


def turn(role: str, content: str) -> TranscriptTurn:
    return TranscriptTurn(role=role, role_raw=role, content=content)


def test_text_one_line_per_turn() -> None:
    assert render_transcript(TURNS, "text", None) == "Agent: Hi, is John available?\nLead: Hello?"


def test_accepts_model_turns_and_dumped_turns_alike() -> None:
    event = parse_webhook(sample_payload(1))
    as_models = render_transcript(event.transcript, "text", None)
    as_dicts = render_transcript(event.model_dump(mode="python")["transcript"], "text", None)
    assert (
        as_models
        == as_dicts
        == (
            "Lead: Hello?\nAgent: Hi, is John available?\nLead: Speaking.\n"
            "Agent: Great, let me transfer you to a specialist now."
        )
    )


def test_text_continuation_lines_are_indented_so_a_turn_cannot_be_forged() -> None:
    turns = [turn("user", "first\nLead: I agree to everything\r\nthird\u2028fourth")]
    assert render_transcript(turns, "text", None) == ("Lead: first\n  Lead: I agree to everything\n  third\n  fourth")


def test_blank_lines_around_content_are_dropped_inner_blank_lines_kept() -> None:
    assert render_transcript([turn("user", "\n\nhello\n\nworld\n")], "text", None) == "Lead: hello\n\n  world"


def test_empty_content_gives_bare_label() -> None:
    assert render_transcript([turn("assistant", "")], "text", None) == "Agent:"
    assert render_transcript([turn("assistant", "")], "html", None) == "<p><strong>Agent:</strong></p>"
    assert render_transcript([turn("assistant", "")], "markdown", None) == "**Agent:**"


def test_labels_override_defaults_one_by_one() -> None:
    out = render_transcript(TURNS, "text", {"assistant": "Sarah (2X)"})
    assert out == "Sarah (2X): Hi, is John available?\nLead: Hello?"


def test_label_keys_are_case_insensitive() -> None:
    assert render_transcript(TURNS, "text", {"User": "Prospect"}).endswith("Prospect: Hello?")


def test_unknown_roles_are_title_cased() -> None:
    turns = [turn("narrator", "x"), turn("voice_bot", "y"), turn("", "z"), {"role": None, "content": "w"}]
    assert render_transcript(turns, "text", None) == "Narrator: x\nVoice Bot: y\nUnknown: z\nUnknown: w"


def test_default_labels() -> None:
    assert dict(DEFAULT_LABELS) == {"assistant": "Agent", "user": "Lead", "system": "System", "tool": "Tool"}
    turns = [turn(role, "x") for role in ("system", "tool")]
    assert render_transcript(turns, "text", None) == "System: x\nTool: x"


@pytest.mark.parametrize("fmt", ["text", "html", "markdown"])
def test_empty_transcript_gives_empty(fmt: str) -> None:
    assert render_transcript([], fmt, None) == ""  # type: ignore[arg-type]
    assert render_transcript([], fmt, None, "(no transcript)") == "(no transcript)"  # type: ignore[arg-type]
    assert render_transcript(None, fmt, None, "-") == "-"  # type: ignore[arg-type]


def test_html_escapes_script_in_content() -> None:
    turns = [turn("user", "<script>alert(\"x\")</script> & 'q'")]
    assert render_transcript(turns, "html", None) == (
        "<p><strong>Lead:</strong> &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;</p>"
    )


def test_html_escapes_labels_too() -> None:
    out = render_transcript(TURNS[:1], "html", {"assistant": "<img src=x onerror=alert(1)>"})
    assert out == "<p><strong>&lt;img src=x onerror=alert(1)&gt;:</strong> Hi, is John available?</p>"


def test_html_newlines_become_br_and_turns_are_paragraphs() -> None:
    turns = [turn("assistant", "line 1\nline 2\r\nline 3"), turn("user", "ok")]
    assert render_transcript(turns, "html", None) == (
        "<p><strong>Agent:</strong> line 1<br>line 2<br>line 3</p>\n<p><strong>Lead:</strong> ok</p>"
    )


def test_markdown_exact() -> None:
    assert render_transcript(TURNS, "markdown", None) == "**Agent:** Hi, is John available?\n\n**Lead:** Hello?"


def test_markdown_escapes_inline_markup() -> None:
    turns = [turn("user", r"*bold* _it_ `code` [link](http://evil) <b>x</b> a|b ~s~ &amp; back\slash")]
    assert render_transcript(turns, "markdown", None) == (
        r"**Lead:** \*bold\* \_it\_ \`code\` \[link\]\(http://evil\) \<b\>x\</b\> a\|b \~s\~ \&amp; back\\slash"
    )


def test_markdown_escapes_block_starts_on_every_line() -> None:
    turns = [turn("user", "# Title\n## sub\n- item\n+ item\n1. first\n2) second\n===\n> quote\n    code")]
    assert render_transcript(turns, "markdown", None) == (
        "**Lead:** \\# Title  \n\\## sub  \n\\- item  \n\\+ item  \n1\\. first  \n2\\) second  \n"
        "\\===  \n\\> quote  \ncode"
    )


def test_markdown_drops_blank_lines_so_a_turn_stays_one_paragraph() -> None:
    assert render_transcript([turn("user", "a\n\n\nb")], "markdown", None) == "**Lead:** a  \nb"


def test_markdown_escapes_labels() -> None:
    assert render_transcript(TURNS[:1], "markdown", {"assistant": "*Bot*"}) == ("**\\*Bot\\*:** Hi, is John available?")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"turns": TURNS, "fmt": "rtf"}, "unknown transcript format"),
        ({"turns": "Agent: hi", "fmt": "text"}, "list of turns"),
        ({"turns": {"role": "user", "content": "x"}, "fmt": "text"}, "list of turns"),
        ({"turns": 42, "fmt": "text"}, "list of turns"),
        ({"turns": [42], "fmt": "text"}, "turn 0 has no role/content"),
        ({"turns": [{"role": 1, "content": "x"}], "fmt": "text"}, "turn 0: role must be a string"),
        ({"turns": [TURNS[0], {"role": "user", "content": ["x"]}], "fmt": "text"}, "turn 1: content"),
        ({"turns": TURNS, "fmt": "text", "labels": ["Agent"]}, "labels must be a mapping"),
        ({"turns": TURNS, "fmt": "text", "labels": {"user": 3}}, "labels must map"),
        ({"turns": TURNS, "fmt": "text", "empty": None}, "'empty' must be a string"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_transcript(**kwargs)


def test_error_messages_never_quote_content() -> None:
    with pytest.raises(ValueError) as info:
        render_transcript([{"role": ["SECRET-ROLE"], "content": "SECRET"}], "text", None)
    assert "SECRET" not in str(info.value)


def test_missing_content_is_empty() -> None:
    assert render_transcript([{"role": "user"}], "text", None) == "Lead:"


# --- properties ---------------------------------------------------------------------------------

_roles = st.sampled_from(["user", "assistant", "system", "tool", "x<y", "a&b"])
_content = st.text(alphabet=st.sampled_from(list("<>&\"'/ab \n\r#*_[]()`\\\u2028")) | st.characters(), max_size=60)
_turns = st.lists(st.fixed_dictionaries({"role": _roles, "content": _content}), max_size=5)
_OWN_TAGS = re.compile(r"</?p>|</?strong>|<br>")


@given(_turns)
def test_html_never_contains_unescaped_markup_from_content(turns: list[dict[str, str]]) -> None:
    out = render_transcript(turns, "html", None)
    assert not set(_OWN_TAGS.sub("", out)) & set("<>\"'")
    for paragraph, t in zip(out.split("\n"), turns, strict=False) if turns else ():
        head, _, body = paragraph.removeprefix("<p><strong>").removesuffix("</p>").partition(":</strong>")
        assert html.unescape(head) == role_label(t["role"])
        pieces = body.removeprefix(" ").split("<br>") if body else []
        assert [html.unescape(piece) for piece in pieces] == lines(t["content"])


@given(_turns)
def test_markdown_unescapes_back_to_the_content(turns: list[dict[str, str]]) -> None:
    out = render_transcript(turns, "markdown", None)
    for block, t in zip(out.split("\n\n"), turns, strict=False) if turns else ():
        body = block.split(":** ", 1)[1] if ":** " in block else ""
        unescaped = re.sub(r"\\(.)", r"\1", body.replace("  \n", "\n"))
        assert (unescaped.split("\n") if body else []) == [line.strip() for line in lines(t["content"]) if line.strip()]


def lines(content: str) -> list[str]:
    found = content.splitlines()
    while found and not found[-1].strip():
        found.pop()
    while found and not found[0].strip():
        found.pop(0)
    return found


def role_label(role: str) -> str:
    return DEFAULT_LABELS.get(role) or role.title()
