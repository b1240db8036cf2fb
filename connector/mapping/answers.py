"""Render the answers to a call's scripted questions as a readable block for a CRM note field.

This is the `answers_text` template variable: the default mappings put it above the transcript in
Salesforce `Task.Description` and HubSpot `hs_call_body`, so every answer lands in the CRM even
when no custom field exists for it. Answers are what the lead said, so they get the same treatment
as the transcript: escaped for the format (no stored XSS in HubSpot's rich text, no forged
``Lead: …`` line in plain text) and redacted by the caller. Never logged.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from connector.mapping.transcript import TranscriptFormat, _md_escape


def render_answers(answers: Mapping[str, Any] | None, fmt: TranscriptFormat = "text", heading: str = "Answers") -> str:
    """The answers as a block ending in a separator, so `{{ answers_text }}{{ transcript_text }}` reads well;
    "" when the call has no answers (then the template yields the transcript alone)."""
    items = [(str(name), _text(value)) for name, value in (answers or {}).items()]
    if not items:
        return ""
    if fmt == "html":
        rows = "".join(
            f"<li><strong>{html.escape(name, quote=True)}:</strong> "
            + "<br>".join(html.escape(line, quote=True) for line in value.splitlines())
            + "</li>"
            for name, value in items
        )
        return f"<p><strong>{html.escape(heading, quote=True)}</strong></p><ul>{rows}</ul>"
    if fmt == "markdown":
        rows = "\n".join(
            f"- **{_md_escape(_one_line(name))}:** "
            + "  \n  ".join(_md_escape(line.strip()) for line in value.splitlines() if line.strip())
            for name, value in items
        )
        return f"**{_md_escape(heading)}**\n\n{rows}\n\n"
    rows = "\n".join(_text_row(name, value) for name, value in items)
    return f"{heading}:\n{rows}\n\n"


def _text(value: Any) -> str:
    """One answer as text: lists joined, objects as JSON, booleans as yes/no, nothing as an em dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value).strip() or "—"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _text_row(name: str, value: str) -> str:
    """``- name: value``; continuation lines indented, so an answer cannot forge a row or a transcript line."""
    lines = value.splitlines() or ["—"]
    rest = [f"    {line}" for line in lines[1:] if line.strip()]
    return "\n".join([f"- {_one_line(name)}: {lines[0]}", *rest])
