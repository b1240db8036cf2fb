"""A small, real SOQL parser (tokenizer + recursive descent, no eval) for the subset a sink needs.

``SELECT f1, f2 | COUNT() FROM T [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]``
with ``=  !=  <>  <  <=  >  >=``, ``[NOT] IN (…)``, ``LIKE``, ``NOT``, parentheses, literals: quoted strings with
backslash escapes, numbers, ``true/false/null``, ``YYYY-MM-DD``, ISO datetimes and TODAY / YESTERDAY / TOMORROW /
LAST_N_DAYS:n / NEXT_N_DAYS:n. Semantics follow the SOQL reference
[docs: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/]: keywords and field names
are case-insensitive; string comparisons are case-insensitive; ``!=`` also matches nulls; mixing AND and OR
without parentheses is an error; default ordering is ASC NULLS FIRST / DESC NULLS LAST; ids compare on their
15-char key. Errors: unknown field → INVALID_FIELD "No such column 'X' on entity 'T'. If you are attempting to
use a custom field, …" (observed), unknown object → INVALID_TYPE, a literal of the wrong type →
INVALID_QUERY_FILTER_OPERATOR "value of filter criterion for field 'F' must be of type boolean and should not be
enclosed in quotes", long text areas → "can not be filtered", everything else → MALFORMED_QUERY "unexpected
token: …", each with Salesforce's caret/Row/Column preamble. Relationship paths (``Account.Name``), GROUP BY,
HAVING, WITH and sub-queries are not supported (400, said so in the message).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connector.emulators.salesforce.errors import SalesforceApiError, query_error
from connector.emulators.salesforce.ids import key15
from connector.emulators.salesforce.schema import ID_TYPES, STRING_TYPES, FieldDef, ObjectDef
from connector.emulators.salesforce.values import parse_date, parse_datetime

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>-?\d+(?:\.\d+)?(?![\w]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
""",
    re.VERBOSE,
)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "%": "%", "_": "_"}
KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "like",
        "order",
        "by",
        "limit",
        "offset",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "true",
        "false",
        "null",
        "includes",
        "excludes",
        "group",
        "having",
        "with",
        "for",
        "returning",
    ]
)
_UNSUPPORTED = frozenset({"group", "having", "with", "includes", "excludes"})
_CUSTOM_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_CUSTOM_OBJECT_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity "
    "name. Please reference your WSDL or the describe call for the appropriate names."
)
Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class Token:
    """One lexeme with its source span (for caret error messages)."""

    kind: str
    text: str
    start: int

    def kw(self, *words: str) -> bool:
        """Whether this is one of the (case-insensitive) keywords."""
        return self.kind == "ident" and self.text.lower() in words


def tokenize(text: str, start: int = 0, *, code: str = "MALFORMED_QUERY") -> list[Token]:
    """Split SOQL (or the tail of a SOSL statement) into tokens; a trailing ``eof`` token marks the end."""
    tokens: list[Token] = []
    position = start
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise query_error(code, text, position, f"unexpected token: '{text[position]}'")
        if match.lastgroup != "ws":
            tokens.append(Token(match.lastgroup or "", match.group(), position))
        position = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def unescape(token: Token, text: str, code: str) -> str:
    """The value of a quoted string literal (SOQL escapes: \\' \\" \\\\ \\n \\t \\r \\b \\f \\% \\_)."""
    body, out, index = token.text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1] if index + 1 < len(body) else ""
            if escaped not in _ESCAPES:
                raise query_error(
                    code,
                    text,
                    token.start,
                    f"Invalid string literal '{body}'. Illegal character sequence '\\{escaped}' in string literal.",
                )
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _like_regex(token: Token) -> re.Pattern[str]:
    """LIKE pattern: % and _ are wildcards unless escaped; case-insensitive."""
    body, parts, index = token.text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            parts.append(re.escape(_ESCAPES.get(body[index + 1], body[index + 1])))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _day_range(word: str, today: date) -> tuple[date, date] | None:
    """Inclusive date range of a date literal keyword."""
    name, _, count = word.upper().partition(":")
    if name == "TODAY" and not count:
        return today, today
    if name == "YESTERDAY" and not count:
        return today - timedelta(days=1), today - timedelta(days=1)
    if name == "TOMORROW" and not count:
        return today + timedelta(days=1), today + timedelta(days=1)
    if name == "LAST_N_DAYS" and count:
        return today - timedelta(days=int(count)), today
    if name == "NEXT_N_DAYS" and count:
        return today + timedelta(days=1), today + timedelta(days=int(count))
    return None


@dataclass
class Query:
    """A parsed SELECT (or one SOSL RETURNING clause)."""

    obj: ObjectDef
    fields: list[str] = field(default_factory=list)
    count: bool = False
    where: Predicate | None = None
    order: list[tuple[FieldDef, bool, bool]] = field(default_factory=list)  # field, descending, nulls first
    limit: int | None = None
    offset: int = 0

    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filter, sort, offset and limit raw records."""
        selected = [r for r in rows if self.where is None or self.where(r)]
        for definition, descending, nulls_first in reversed(self.order):
            present = sorted(
                (r for r in selected if r.get(definition.name) is not None),
                key=_sort_key(definition.name),
                reverse=descending,
            )
            missing = [r for r in selected if r.get(definition.name) is None]
            selected = missing + present if nulls_first else present + missing
        selected = selected[self.offset :]
        return selected if self.limit is None else selected[: self.limit]


def _sort_key(name: str) -> Callable[[dict[str, Any]], Any]:
    """Sort by one field; strings case-insensitively, as SOQL orders text."""

    def key(record: dict[str, Any]) -> Any:
        value = record[name]
        return value.casefold() if isinstance(value, str) else value

    return key


class Parser:
    """Recursive-descent parser over ``tokens`` of ``text``, resolving names against the org's schema."""

    def __init__(
        self, text: str, tokens: list[Token], schema: dict[str, ObjectDef], today: date, code: str = "MALFORMED_QUERY"
    ) -> None:
        self.text, self.tokens, self.schema, self.today, self.code = text, tokens, schema, today, code
        self.index = 0

    # --- token helpers -------------------------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def accept(self, *words: str) -> Token | None:
        return self.next() if self.peek().kw(*words) else None

    def accept_punct(self, char: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == char:
            self.next()
            return True
        return False

    def expect(self, *words: str) -> Token:
        token = self.accept(*words)
        if token is None:
            raise self.unexpected(self.peek())
        return token

    def expect_punct(self, char: str) -> None:
        if not self.accept_punct(char):
            raise self.unexpected(self.peek())

    def unexpected(self, token: Token) -> SalesforceApiError:
        detail = "unexpected token: <EOF>" if token.kind == "eof" else f"unexpected token: '{token.text}'"
        if token.kw(*_UNSUPPORTED):
            detail += " (not supported by this emulator)"
        return query_error(self.code, self.text, token.start, detail)

    # --- grammar -------------------------------------------------------------------------------------------
    def parse_select(self) -> Query:
        """``SELECT … FROM T …`` through the end of the text."""
        self.expect("select")
        count, field_tokens = self.parse_field_tokens()
        self.expect("from")
        query = Query(self.resolve_object(self.next()), count=count)
        query.fields = [self.resolve_field(query.obj, t).name for t in field_tokens]
        self.parse_clauses(query)
        if self.accept("for"):
            self.expect("view", "reference", "update")
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return query

    def parse_field_tokens(self) -> tuple[bool, list[Token]]:
        """The select list: ``COUNT()`` or field names (resolved once the object is known)."""
        if self.peek().kw("count") and self.tokens[self.index + 1].text == "(":
            self.next()
            self.expect_punct("(")
            self.expect_punct(")")
            return True, []
        tokens = []
        while True:
            token = self.next()
            if token.kind != "ident" or token.text.lower() in KEYWORDS:
                raise self.unexpected(token)
            tokens.append(token)
            if not self.accept_punct(","):
                return False, tokens

    def parse_clauses(self, query: Query) -> None:
        """WHERE, ORDER BY, LIMIT and OFFSET, each optional, in this order."""
        if self.accept("where"):
            query.where = self.parse_condition(query.obj)
        if self.accept("order"):
            self.expect("by")
            while True:
                definition = self.resolve_field(query.obj, self.next(), purpose="sorted")
                direction = self.accept("asc", "desc")
                descending = bool(direction and direction.text.lower() == "desc")
                nulls_first = not descending
                if self.accept("nulls"):
                    nulls_first = self.expect("first", "last").text.lower() == "first"
                query.order.append((definition, descending, nulls_first))
                if not self.accept_punct(","):
                    break
        if self.accept("limit"):
            query.limit = self.parse_count()
        if self.accept("offset"):
            query.offset = self.parse_count()
            if query.offset > 2000:
                raise SalesforceApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")

    def parse_count(self) -> int:
        token = self.next()
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected(token)
        return int(token.text)

    def parse_condition(self, obj: ObjectDef) -> Predicate:
        """Terms joined by AND or by OR (not both without parentheses)."""
        terms = [self.parse_term(obj)]
        joiner: str | None = None
        while self.peek().kw("and", "or"):
            token = self.next()
            if joiner is not None and token.text.lower() != joiner:
                raise self.unexpected(token)
            joiner = token.text.lower()
            terms.append(self.parse_term(obj))
        if len(terms) == 1:
            return terms[0]
        if joiner == "and":
            return lambda r: all(t(r) for t in terms)
        return lambda r: any(t(r) for t in terms)

    def parse_term(self, obj: ObjectDef) -> Predicate:
        if self.accept("not"):
            inner = self.parse_term(obj)
            return lambda r: not inner(r)
        if self.accept_punct("("):
            inner = self.parse_condition(obj)
            self.expect_punct(")")
            return inner
        return self.parse_comparison(obj)

    def parse_comparison(self, obj: ObjectDef) -> Predicate:
        definition = self.resolve_field(obj, self.next(), purpose="filtered")
        name = definition.name
        negate = bool(self.accept("not"))
        if negate or self.peek().kw("in"):
            self.expect("in")
            self.expect_punct("(")
            values = [self.literal(definition)]
            while self.accept_punct(","):
                values.append(self.literal(definition))
            self.expect_punct(")")
            tests = [_comparator(definition, "=", v) for v in values]
            return (
                (lambda r: not any(t(r.get(name)) for t in tests))
                if negate
                else (lambda r: any(t(r.get(name)) for t in tests))
            )
        if self.accept("like"):
            token = self.next()
            if token.kind != "string":
                raise self.unexpected(token)
            pattern = _like_regex(token)
            return lambda r: isinstance(r.get(name), str) and bool(pattern.match(r[name]))
        token = self.next()
        if token.kind != "op":
            raise self.unexpected(token)
        test = _comparator(definition, "!=" if token.text == "<>" else token.text, self.literal(definition))
        return lambda r: test(r.get(name))

    def literal(self, definition: FieldDef) -> Any:
        """The next value, type-checked against the field the way Salesforce checks filter criteria."""
        token = self.next()
        kind = definition.type
        if token.kw("null"):
            return None
        expected = (
            "boolean"
            if kind == "boolean"
            else "date"
            if kind == "date"
            else "dateTime"
            if kind == "datetime"
            else "number"
            if kind in ("int", "double")
            else "string"
        )
        ok: Any = _MISSING
        if token.kind == "string" and expected == "string":
            ok = unescape(token, self.text, self.code)
            if kind in ID_TYPES and key15(ok) is None:
                raise SalesforceApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {ok}")
        elif token.kw("true", "false") and expected == "boolean":
            ok = token.text.lower() == "true"
        elif token.kind == "number" and expected == "number":
            ok = float(token.text) if "." in token.text else int(token.text)
        elif token.kind == "date" and expected == "date":
            ok = parse_date(token.text)
        elif token.kind == "datetime" and expected == "dateTime":
            ok = parse_datetime(token.text)
        elif token.kind == "ident" and expected in ("date", "dateTime"):
            ok = _day_range(token.text, self.today)
        if ok is _MISSING or ok is None:
            if token.kind in ("string", "number", "date", "datetime") or token.kw("true", "false"):
                quotes = "be enclosed in quotes" if expected == "string" else "not be enclosed in quotes"
                raise SalesforceApiError(
                    400,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"value of filter criterion for field '{definition.name}' must be of type "
                    f"{expected} and should {quotes}",
                )
            raise self.unexpected(token)
        return ok

    # --- name resolution -----------------------------------------------------------------------------------
    def resolve_object(self, token: Token) -> ObjectDef:
        if token.kind != "ident" or token.text.lower() in KEYWORDS:
            raise self.unexpected(token)
        obj = self.schema.get(token.text.lower())
        if obj is None:
            raise query_error(
                "INVALID_TYPE",
                self.text,
                token.start,
                f"sObject type '{token.text}' is not supported. {_CUSTOM_OBJECT_HINT}",
            )
        return obj

    def resolve_field(self, obj: ObjectDef, token: Token, purpose: str | None = None) -> FieldDef:
        if token.kind != "ident" or token.text.lower() in KEYWORDS:
            raise self.unexpected(token)
        if "." in token.text:
            relation = token.text.split(".")[0]
            raise query_error(
                "INVALID_FIELD",
                self.text,
                token.start,
                f"Didn't understand relationship '{relation}' in field path. If you are attempting "
                "to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the "
                "appropriate names. (Relationship paths are not supported by this emulator.)",
            )
        definition = obj.field(token.text)
        if definition is None:
            raise query_error(
                "INVALID_FIELD",
                self.text,
                token.start,
                f"No such column '{token.text}' on entity '{obj.name}'. {_CUSTOM_FIELD_HINT}",
            )
        if purpose and not definition.filterable:
            raise query_error(
                "INVALID_FIELD",
                self.text,
                token.start,
                f"field '{definition.name}' can not be {purpose} in a query call",
            )
        return definition


_MISSING = object()


def _comparator(definition: FieldDef, op: str, literal: Any) -> Callable[[Any], bool]:
    """A test of one stored value against one literal, with SOQL's type rules."""
    if isinstance(literal, tuple):  # a date literal keyword: an inclusive day range
        return _range_comparator(definition, op, literal)
    if definition.type in ID_TYPES and isinstance(literal, str):
        literal = key15(literal)

        def normalize(value: Any) -> Any:
            return key15(value) if value is not None else None
    elif definition.type in STRING_TYPES and isinstance(literal, str):
        literal = literal.casefold()

        def normalize(value: Any) -> Any:
            return value.casefold() if isinstance(value, str) else value
    else:

        def normalize(value: Any) -> Any:
            return value

    if op == "=":
        return lambda v: bool(normalize(v) == literal)
    if op == "!=":
        return lambda v: bool(normalize(v) != literal)
    compare: Callable[[Any, Any], bool] = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}[op]
    return lambda v: v is not None and literal is not None and compare(normalize(v), literal)


def _range_comparator(definition: FieldDef, op: str, bounds: tuple[date, date]) -> Callable[[Any], bool]:
    """Comparison with TODAY, LAST_N_DAYS:n …: ``=`` means inside the range, ``<`` before it, ``>`` after it."""
    low, high = bounds
    if definition.type == "datetime":
        start: Any = datetime.combine(low, time(), UTC)
        end: Any = datetime.combine(high + timedelta(days=1), time(), UTC)
    else:
        start, end = low, high + timedelta(days=1)

    def inside(value: Any) -> bool:
        return bool(start <= value < end)

    tests: dict[str, Callable[[Any], bool]] = {
        "=": inside,
        "!=": lambda v: not inside(v),
        "<": lambda v: bool(v < start),
        ">": lambda v: bool(v >= end),
        "<=": lambda v: bool(v < end),
        ">=": lambda v: bool(v >= start),
    }
    test = tests[op]
    return lambda v: (op == "!=") if v is None else test(v)


def parse_soql(text: str, schema: dict[str, ObjectDef], today: date) -> Query:
    """Parse a whole SOQL statement."""
    if not text.strip():
        raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    return Parser(text, tokenize(text), schema, today).parse_select()
