"""A long HTML call body is cut on a tag boundary, with its open tags closed and the marker in its own paragraph;
plain text is cut as before (``truncate_to``). Units, the planner with the default HubSpot mapping, and once through
the real hubspot-api-client into the emulator."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.mapping.filters import FilterError
from connector.mapping.html_cut import VOID, looks_like_html, truncate_html
from connector.sinks.hubspot.schema import MAX_TEXT
from tests.support import hubspot as hs
from tests.support import salesforce as sf

MARKER_PARAGRAPH = re.compile(r"<p>… \[truncated (\d+) characters\]</p>$")


class Balance(HTMLParser):
    """Records whether every element is closed in order, and text seen inside tags (a tag cut in half)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.mismatched = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.mismatched = True


def assert_well_cut(original: str, cut: str, limit: int) -> None:
    assert len(cut) <= limit
    found = MARKER_PARAGRAPH.search(cut)
    assert found is not None, cut[-200:]
    kept = cut[: found.start()]
    removed = int(found.group(1))
    prefix = original[: len(original) - removed]
    assert kept.startswith(prefix) and re.fullmatch(r"(</[a-z]+>)*", kept[len(prefix) :])  # only closing tags added
    assert prefix.count("<") == prefix.count(">")  # never inside a tag
    assert not re.search(r"&#?[A-Za-z0-9]*$", prefix)  # never inside an entity
    parser = Balance()
    parser.feed(cut)
    parser.close()
    assert not parser.open and not parser.mismatched


def transcript_html(turns: int, line: str = "We can talk about the budget & the <timeline> next week.") -> str:
    """What the transcript renderer makes of a long call (content escaped, each turn a paragraph)."""
    escaped = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"<p><strong>Lead:</strong> {escaped}<br>{i}</p>" for i in range(turns))


ANSWERS = "<p><strong>Answers</strong></p><ul><li><strong>notes:</strong> call &amp; email</li></ul>"


@pytest.mark.parametrize("limit", [64, 65, 80, 97, 120, 200, 333, 1000, 4096])
def test_html_is_cut_between_tags_with_open_tags_closed(limit: int) -> None:
    text = ANSWERS + transcript_html(200)
    assert_well_cut(text, truncate_html(text, limit), limit)


@given(
    turns=st.integers(min_value=1, max_value=60),
    line=st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    limit=st.integers(min_value=64, max_value=3000),
)
def test_any_rendered_transcript_is_cut_well(turns: int, line: str, limit: int) -> None:
    text = ANSWERS + transcript_html(turns, line)
    cut = truncate_html(text, limit)
    if len(text) <= limit:
        assert cut == text
    else:
        assert_well_cut(text, cut, limit)


def test_a_limit_too_short_for_the_marker_paragraph_fails() -> None:
    with pytest.raises(FilterError, match="shorter than the marker"):
        truncate_html(transcript_html(2000), 20)


def test_only_html_is_cut_as_html() -> None:
    assert looks_like_html(ANSWERS) and looks_like_html("a<br>b")
    assert not looks_like_html("x < y and y > z") and not looks_like_html("a &lt;b&gt; c")
    turns = [{"role": "User", "content": "x < y, said the <b> lead " * 100} for _ in range(20)]
    [task] = [a for a in sf.make_plan(903, transcript=turns).actions if a.key.endswith(":activity")]
    description = task.properties["Description"]  # transcript format text: truncate_to's cut, as before
    assert len(description) == 32_000 and re.search(r"[^>] … \[truncated \d+ characters\]$", description)


def test_the_planner_cuts_a_huge_html_call_body_on_a_tag_boundary() -> None:
    turns = [{"role": "User" if i % 2 else "Assistant", "content": "word " * 120} for i in range(1000)]
    [activity] = [a for a in hs.make_plan(901, transcript=turns).actions if a.key.endswith(":activity")]
    body = activity.properties["hs_call_body"]
    assert MAX_TEXT - 100 < len(body) <= MAX_TEXT
    assert body.startswith("<p><strong>Answers</strong></p>") and MARKER_PARAGRAPH.search(body)
    assert body.count("<p>") == body.count("</p>")


def test_a_long_html_transcript_reaches_hubspot_cut_well() -> None:
    """The report's ~586 KB transcript, through the sink into the emulator: stored within 65,536 characters, closed."""
    turns = [
        {"role": "User" if i % 2 else "Assistant", "content": "Let us go over the numbers. " * 20} for i in range(1050)
    ]
    with hs.seeded_portal() as portal:
        sink = hs.open_sink(portal)
        try:
            hs.run(sink, hs.make_plan(902, transcript=turns))
        finally:
            sink.close()
        [call] = hs.calls_of(portal, 902)
    body = call["properties"]["hs_call_body"]
    found = MARKER_PARAGRAPH.search(body)
    assert len(body) <= MAX_TEXT and found is not None and int(found.group(1)) > 500_000
    parser = Balance()
    parser.feed(body)
    assert not parser.open and not parser.mismatched
