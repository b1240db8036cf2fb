"""SOSL (``GET search/?q=FIND {…} …``) and ``GET parameterizedSearch/`` over the emulated org.

Grammar handled [docs: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
sforce_api_calls_sosl_syntax.htm]: ``FIND {term}`` ``[IN ALL|NAME|EMAIL|PHONE|SIDEBAR FIELDS]``
``[RETURNING Obj[(f1, f2 [WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n])], …]`` ``[LIMIT n]``. Reserved characters in
the term must be backslash-escaped (``? & | ! { } [ ] ( ) ^ ~ * : \\ " ' + -``); an unescaped brace is
MALFORMED_SEARCH. Terms are ANDed (``OR`` between terms ORs them); a trailing ``*`` is a prefix wildcard.

Phone matching: Salesforce's search index ignores phone formatting, so phone fields are compared digits-only,
a leading ``1`` of an 11-digit NANP number being optional (UNVERIFIED beyond "formatting is ignored"; exact
digit match, no suffix matching). ``IN PHONE FIELDS`` searches only phone-type fields (https://developer.
salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_sosl_in.htm); phone fields keep
whatever format was typed, and with a US/Canada locale 10 digits, or 11 starting with 1, are stored as
``(800) 555-1212`` (https://help.salesforce.com/s/articleView?id=000385963), so a national-format value is the
common case the sink's search terms (E.164 digits OR national digits, ``connector.phones.number_forms``) must
and do cover — a trunk-prefixed national form (``020 7946 0018``) is matched by its own digits. Text fields match whole words, case-insensitively. The index is asynchronous:
records created less than ``search_lag`` seconds ago are not found (emulated; Salesforce gives no bound).
Results keep the RETURNING order of objects, then creation order (real SOSL orders by relevance).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from connector.emulators.salesforce.errors import SalesforceApiError, query_error
from connector.emulators.salesforce.schema import ObjectDef
from connector.emulators.salesforce.soql import Parser, Query, tokenize
from connector.emulators.salesforce.store import Store

_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")
# Unescaped in a term: wildcards, phrase quotes, grouping parentheses and hyphens are tolerated (UNVERIFIED); any
# other reserved character is refused like Salesforce refuses '|' (observed: "mismatched character '|' expecting
# '}'"), so a sink that forgets to escape a leading '+' of an E.164 number finds out here.
_TOLERATED = frozenset('*?"()-')
_SCOPES = {"all": None, "name": "NAME", "email": "EMAIL", "phone": "PHONE", "sidebar": None}
DEFAULT_SEARCH_OBJECTS = ("Contact", "Lead", "Account")
_CODE = "MALFORMED_SEARCH"


def _digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


class Term:
    """The parsed search text: groups of words (ORed groups of ANDed words)."""

    def __init__(self, text: str) -> None:
        self.groups: list[list[str]] = [[]]
        for word in (w.strip('"()') for w in text.split()):
            if not word:
                continue
            if word == "OR":
                self.groups.append([])
            elif word not in ("AND",):
                self.groups[-1].append(word)
        self.groups = [g for g in self.groups if g]
        plain = all(len(g) == 1 and not g[0].endswith("*") for g in self.groups)
        self._numbers = {d for g in self.groups if len(d := _digits(g[0].casefold())) >= 3} if plain else None
        """Only ORed single words: in PHONE FIELDS a record matches when a phone's digits are one of these (the same
        answer as word by word, looked up in a set: a batched search ORs hundreds of numbers)."""

    def matches(self, obj: ObjectDef, record: dict[str, Any], scope: str | None) -> bool:
        fields = [d for d in obj.fields.values() if d.search_scope and (scope is None or d.search_scope == scope)]
        if self._numbers is not None and scope == "PHONE":
            return any(_digits(value) in self._numbers for d in fields if isinstance(value := record.get(d.name), str))
        return any(all(self._word_matches(word, record, fields) for word in group) for group in self.groups)

    @staticmethod
    def _word_matches(word: str, record: dict[str, Any], fields: list[Any]) -> bool:
        prefix = word.endswith("*")
        core = word.rstrip("*").casefold()
        digits = _digits(core)
        for definition in fields:
            value = record.get(definition.name)
            if not isinstance(value, str):
                continue
            if definition.search_scope == "PHONE":
                if len(digits) >= 3 and (_digits(value).startswith(digits) if prefix else _digits(value) == digits):
                    return True
                continue
            pattern = r"(?<![0-9a-z])" + re.escape(core) + ("" if prefix else r"(?![0-9a-z])")
            if core and re.search(pattern, value.casefold()):
                return True
        return False


def _split_term(text: str) -> tuple[str, int]:
    """The unescaped text between ``FIND {`` and its closing brace, and the offset after the brace."""
    match = re.match(r"\s*FIND\s*", text, re.IGNORECASE)
    if not match:
        raise query_error(_CODE, text, 0, f"unexpected token: '{text.strip()[:4] or '<EOF>'}'")
    position = match.end()
    if position >= len(text) or text[position] not in "{'\"":
        raise query_error(
            _CODE,
            text,
            position,
            "unexpected token: <EOF>" if position >= len(text) else f"unexpected token: '{text[position]}'",
        )
    closing = "}" if text[position] == "{" else text[position]
    out, index = [], position + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char == closing:
            term = "".join(out)
            if len(term.replace("*", "").replace("?", "").strip()) < 2:
                raise SalesforceApiError(400, _CODE, "search term must be longer than one character")
            return term, index + 1
        if char in "{}" or (char in _RESERVED - _TOLERATED and char != closing):
            raise query_error(_CODE, text, index, f"line 1:{index} mismatched character '{char}' expecting '{closing}'")
        out.append(char)
        index += 1
    raise query_error(_CODE, text, len(text), f"mismatched character '<EOF>' expecting '{closing}'")


def search(store: Store, text: str, version: str, *, now: datetime, lag: float) -> dict[str, Any]:
    """Run a SOSL statement; the REST ``search`` response body."""
    term_text, position = _split_term(text)
    term = Term(term_text)
    parser = Parser(text, tokenize(text, position, code=_CODE), store.schema, now.date(), code=_CODE)
    scope: str | None = None
    if parser.accept("in"):
        word = parser.next()
        if word.text.lower() not in _SCOPES:
            raise parser.unexpected(word)
        scope = _SCOPES[word.text.lower()]
        parser.expect("fields")
    clauses: list[Query] = []
    if parser.accept("returning"):
        while True:
            query = Query(parser.resolve_object(parser.next()), fields=["Id"])
            if parser.accept_punct("("):
                _, field_tokens = parser.parse_field_tokens()
                query.fields = [parser.resolve_field(query.obj, t).name for t in field_tokens]
                parser.parse_clauses(query)
                parser.expect_punct(")")
            clauses.append(query)
            if not parser.accept_punct(","):
                break
    else:
        clauses = [Query(obj, fields=["Id"]) for obj in (store.object(n) for n in DEFAULT_SEARCH_OBJECTS) if obj]
    overall = parser.parse_count() if parser.accept("limit") else 2000
    if parser.peek().kind != "eof":
        raise parser.unexpected(parser.peek())
    return {"searchRecords": run(store, term, scope, clauses, version, now=now, lag=lag)[:overall]}


def run(
    store: Store, term: Term, scope: str | None, clauses: list[Query], version: str, *, now: datetime, lag: float
) -> list[dict[str, Any]]:
    """Matching records of each clause, serialized with their selected fields."""
    indexed_before = now - timedelta(seconds=lag)
    found: list[dict[str, Any]] = []
    for query in clauses:
        candidates = [
            r for r in store.rows(query.obj) if r["CreatedDate"] <= indexed_before and term.matches(query.obj, r, scope)
        ]
        found += [store.serialize(query.obj, r, version, query.fields) for r in query.run(candidates)]
    return found


def parameterized_search(store: Store, args: Any, version: str, *, now: datetime, lag: float) -> dict[str, Any]:
    """``GET parameterizedSearch/?q=…&sobject=Contact&Contact.fields=Id,Phone&in=PHONE&overallLimit=…``."""
    text = args.get("q") or ""
    if len(text.replace("*", "").strip()) < 2:
        raise SalesforceApiError(400, _CODE, "search term must be longer than one character")
    scope_name = (args.get("in") or "ALL").lower()
    if scope_name not in _SCOPES:
        raise SalesforceApiError(400, "INVALID_SEARCH_SCOPE", f"Invalid search scope: {args.get('in')}")
    names = [n for value in args.getlist("sobject") for n in value.split(",") if n] or list(DEFAULT_SEARCH_OBJECTS)
    clauses = []
    for name in names:
        obj = store.object(name)
        if obj is None:
            raise SalesforceApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        wanted = args.get(f"{name}.fields") or args.get("fields") or "Id"
        fields = []
        for field_name in (f.strip() for f in wanted.split(",") if f.strip()):
            definition = obj.field(field_name)
            if definition is None:
                raise SalesforceApiError(400, "INVALID_FIELD", f"No such column '{field_name}' on entity '{obj.name}'")
            fields.append(definition.name)
        limit = args.get(f"{name}.limit") or args.get("defaultLimit")
        clauses.append(Query(obj, fields=fields, limit=int(limit) if limit and limit.isdigit() else None))
    overall = args.get("overallLimit")
    records = run(store, Term(text), _SCOPES[scope_name], clauses, version, now=now, lag=lag)
    return {"searchRecords": records[: int(overall)] if overall and overall.isdigit() else records}
