"""HTML text cut to a limit the way a rich-text field can show it: on a tag boundary, open tags closed, the
truncation marker in its own paragraph.

Why: ``truncate_to`` cuts at a character count, which is right for plain text but left a long HTML transcript in
``hs_call_body`` ending inside an unclosed ``<p>`` (or inside a tag, or an entity), with the marker glued to the
last words of the conversation. Pure: no I/O. The input is what the transcript and answers renderers produce
(every ``<`` of content escaped), so every ``<`` starts a tag.
"""

from __future__ import annotations

import html
import re

from connector.mapping.filters import TRUNCATION_MARKER, FilterError

_TOKEN = re.compile(r"<[^>]*>|&#?[A-Za-z0-9]+;")
"""A tag or a character reference: never cut inside either."""
_OPENING = re.compile(r"<([A-Za-z][A-Za-z0-9]*)\b[^>]*>")
_CLOSING = re.compile(r"</([A-Za-z][A-Za-z0-9]*)\s*>")
_LOOKS_HTML = re.compile(r"<(?:[A-Za-z][A-Za-z0-9]*\b[^>]*|/[A-Za-z][A-Za-z0-9]*\s*)>")
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
"""Elements without a closing tag (HTML Living Standard, "void elements")."""


def looks_like_html(text: str) -> bool:
    """Whether ``text`` has at least one tag (rendered HTML escapes every ``<`` of content)."""
    return _LOOKS_HTML.search(text) is not None


def truncate_html(text: str, limit: int, marker: str = TRUNCATION_MARKER) -> str:
    """``text`` within ``limit`` characters: cut between tags or characters (never inside a tag or an entity),
    the elements still open closed, then ``<p>`` marker ``</p>`` (``{removed}``: characters of ``text`` left out).

    Raises FilterError when the limit cannot hold the marker paragraph.
    """
    if len(text) <= limit:
        return text
    mark_max = len(_marker(marker, len(text)))  # the removed count has at most this many digits
    if limit < mark_max:
        raise FilterError(f"truncate_html: limit {limit} is shorter than the marker ({mark_max} characters)")
    cut, stack = _best_cut(text, limit - mark_max)
    while stack and (last := _last_opening(text, cut)) is not None and last[1] == stack[-1]:
        cut, stack = last[0], stack[:-1]  # an element opened right before the cut would hold nothing: drop it
    closing = "".join(f"</{name}>" for name in reversed(stack))
    return text[:cut] + closing + _marker(marker, len(text) - cut)


def _marker(marker: str, removed: int) -> str:
    return f"<p>{html.escape(marker.replace('{removed}', str(removed)).strip(), quote=True)}</p>"


def _best_cut(text: str, budget: int) -> tuple[int, list[str]]:
    """The longest prefix that ends on a boundary and fits ``budget`` with the closing tags of the elements it leaves
    open; (its length, those elements in opening order)."""
    stack: list[str] = []
    closing = 0  # characters of the closing tags of ``stack``
    best: tuple[int, list[str]] = (0, [])
    position = 0
    for token in [*_TOKEN.finditer(text), None]:
        start = token.start() if token is not None else len(text)
        # any point of the plain text before this token is a boundary
        room = budget - closing
        if room >= position:
            cut = min(start, room)
            if 0 < cut < len(text) and "\ud800" <= text[cut - 1] <= "\udbff":
                cut -= 1  # never split a surrogate pair
            best = (cut, list(stack))
        if token is None or start > budget:
            break
        tag = token.group()
        if (opened := _OPENING.fullmatch(tag)) is not None and not tag.endswith("/>"):
            name = opened.group(1).lower()
            if name not in VOID:
                stack.append(name)
                closing += len(name) + 3
        elif (ended := _CLOSING.fullmatch(tag)) is not None and ended.group(1).lower() in stack:
            name = ended.group(1).lower()
            while stack:
                popped = stack.pop()
                closing -= len(popped) + 3
                if popped == name:
                    break
        position = token.end()
        if position + closing <= budget:
            best = (position, list(stack))
    return best


def _last_opening(text: str, cut: int) -> tuple[int, str] | None:
    """(start, name) of an opening tag that ends exactly at ``cut``, else None."""
    start = text.rfind("<", 0, cut)
    if start < 0 or text[cut - 1 : cut] != ">":
        return None
    opened = _OPENING.fullmatch(text, start, cut)
    return (start, opened.group(1).lower()) if opened is not None else None
