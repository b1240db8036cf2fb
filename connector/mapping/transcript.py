"""Render a call transcript for a CRM note field: plain text, Markdown or HTML.

Turn content is whatever the lead (or the vendor's AI) said, so it is untrusted input that lands in
a CRM which renders it:

- html: every label and every character of content goes through ``html.escape(quote=True)``; an
  unescaped ``<`` here would be a stored XSS in the CRM.
- markdown: every character that could start inline markup is backslash-escaped, and so is any
  line start that could open a block (heading, list, quote, fence, setext underline), so content
  cannot forge a turn, a link, an image or a heading.
- text: continuation lines of a turn are indented by two spaces, so content cannot forge a
  ``Lead: …`` line either.

Line breaks are split with :meth:`str.splitlines`, which also honours ``\\r``, ``\\u2028`` and other
separators a CRM might treat as a new line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

TranscriptFormat = Literal["text", "html", "markdown"]
FORMATS: tuple[str, ...] = ("text", "html", "markdown")

DEFAULT_LABELS: Mapping[str, str] = MappingProxyType(
    {"assistant": "Agent", "user": "Lead", "system": "System", "tool": "Tool"}
)
"""Speaker label per normalized role; a mapping's ``labels`` override these one by one."""

_MD_INLINE = re.compile(r"([\\`*_\[\]<>()|~&])")
"""Characters that can start inline Markdown, raw HTML or an entity; escaping is always harmless.

Parentheses are included so that a later ``redact`` replacement ending in ``]`` cannot become a link."""
_MD_BLOCK_START = re.compile(r"^(?:([#+=-])|(\d+)([.)]))")
"""Line starts that open a block: ATX heading, list item, setext underline, ordered list."""


def render_transcript(
    turns: Iterable[Any] | None,
    fmt: TranscriptFormat = "text",
    labels: Mapping[str, str] | None = None,
    empty: str = "",
) -> str:
    """The whole conversation as one string in ``fmt``; ``empty`` when there are no turns.

    ``turns`` are :class:`connector.payload.TranscriptTurn` objects or mappings with ``role`` and
    ``content`` (what templates see after ``model_dump``). Raises ValueError for an unknown format,
    a label that is not a string, or a turn of the wrong shape; messages never quote the content.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(empty, str):
        raise ValueError("'empty' must be a string")
    merged = _labels(labels)
    if turns is None:
        return empty
    if isinstance(turns, (str, bytes, Mapping)) or not isinstance(turns, Iterable):
        raise ValueError(f"transcript must be a list of turns, got {type(turns).__name__}")
    heads: dict[str, str] = {}  # role -> its rendered label: a call has two or three roles and dozens of turns
    rendered = [_render_turn(fmt, *_role_and_content(turn, i), merged, heads) for i, turn in enumerate(turns)]
    if not rendered:
        return empty
    return ("\n\n" if fmt == "markdown" else "\n").join(rendered)


_ABSENT = object()


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if labels is None:
        return dict(DEFAULT_LABELS)
    if not isinstance(labels, Mapping):
        raise ValueError(f"labels must be a mapping of role to label, got {type(labels).__name__}")
    merged = dict(DEFAULT_LABELS)
    for role, label in labels.items():
        if not isinstance(role, str) or not isinstance(label, str):
            raise ValueError("labels must map role names (strings) to labels (strings)")
        merged[role.strip().lower()] = label
    return merged


def _role_and_content(turn: Any, index: int) -> tuple[str, str]:
    # The usual turns first (TranscriptTurn objects, dicts): the Mapping ABC's check costs more than the rest
    role, content = getattr(turn, "role", _ABSENT), getattr(turn, "content", _ABSENT)
    if role is _ABSENT or content is _ABSENT:
        if not (type(turn) is dict or isinstance(turn, Mapping)):
            raise ValueError(f"transcript turn {index} has no role/content, got {type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
    if role is None:
        role = "unknown"
    if not isinstance(role, str):
        raise ValueError(f"transcript turn {index}: role must be a string")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ValueError(f"transcript turn {index}: content must be a string")
    return role, content


def _label_for(role: str, labels: Mapping[str, str]) -> str:
    """Configured label, else the role itself title-cased (``voice_bot`` -> ``Voice Bot``)."""
    key = role.strip().lower()
    if key in labels:
        return labels[key]
    return " ".join(key.replace("_", " ").split()).title() or "Unknown"


def _content_lines(content: str) -> list[str]:
    """Lines of one turn, without the blank lines around it (they only make empty rows)."""
    lines = content.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def _render_turn(fmt: str, role: str, content: str, labels: Mapping[str, str], heads: dict[str, str]) -> str:
    head = heads.get(role)
    if head is None:
        head = heads[role] = _head(fmt, _label_for(role, labels))
    lines = _content_lines(content)
    if fmt == "html":
        if len(lines) == 1:  # most turns: no generator to set up
            body = html.escape(lines[0], quote=True)
        else:
            body = "<br>".join(html.escape(line, quote=True) for line in lines)
        return f"<p>{head} {body}</p>" if body else f"<p>{head}</p>"
    if fmt == "markdown":
        # One paragraph per turn: blank lines inside content would end it, so they are dropped,
        # and lines are joined with a hard break (two trailing spaces).
        body = "  \n".join(_md_escape(line.strip()) for line in lines if line.strip())
        return f"{head} {body}" if body else head
    if not lines:
        return head
    rest = [f"  {line}" if line else "" for line in lines[1:]]
    return "\n".join([f"{head} {lines[0]}" if lines[0] else head, *rest])


def _head(fmt: str, label: str) -> str:
    """A turn's speaker label as it opens the turn in `fmt`, escaped for it."""
    if fmt == "html":
        return f"<strong>{html.escape(label, quote=True)}:</strong>"
    if fmt == "markdown":
        return f"**{_md_escape(' '.join(label.split()))}:**"
    return f"{' '.join(label.split())}:"


def _md_escape(line: str) -> str:
    escaped = _MD_INLINE.sub(r"\\\1", line)
    return _MD_BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", escaped, count=1)
