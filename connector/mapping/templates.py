"""Mapping values as sandboxed Jinja2 templates, compiled once at load, rendered per event.

A value is one of three things:
- a literal (`true`, `42`, `"COMPLETED"`): used as is;
- a single expression (`"{{ call.duration_ms }}"`): evaluated to its native type, so numbers stay
  numbers and booleans stay booleans for CRMs with typed fields;
- a template (`"2X call: {{ outcome.label }}"`): rendered to a string.

`StrictUndefined` turns a typo or a missing key into an error naming the mapping line, instead of
an empty string silently written to a CRM.

Most mapping values only read keys of the event and pass them through filters (`{{ outcome.name }}`,
`{{ call_time | iso_utc }}`, `"2X call: {{ outcome.label }}"`). Those are also compiled to a direct evaluation
(`_direct`) that walks the event's dicts and calls the filter functions as Jinja's generated code does, without
building a Jinja context per value: under a backlog the worker renders about twenty values per event. Anything
else it meets (a missing key, an object that is not a dict, a key that a dict method would shadow, any error)
hands the value back to Jinja, so results and error messages are Jinja's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

from connector.errors import MappingError
from connector.keys import crm_key
from connector.mapping.filters import FILTERS

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)


def make_environment() -> SandboxedEnvironment:
    """The sandbox every mapping template runs in: no attribute tricks, no undefined values."""
    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    environment.filters.update(FILTERS)
    environment.filters["crm_key"] = crm_key  # idempotency keys within CRM field limits
    return environment


@dataclass(frozen=True)
class Where:
    """A place in a mapping file, for error messages sales ops can act on."""

    source: str
    path: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.source}:{self.line} ({self.path})" if self.line else f"{self.source} ({self.path})"


@dataclass(frozen=True)
class CompiledValue:
    """One mapping value, ready to render against an event's context.

    Rendered straight from the compiled template (`root_render_func`) in a context built from one plain copy of
    the template's globals taken at compile time: Jinja's own `render` and `TemplateExpression.__call__` copy
    the context and walk the globals' ChainMap on every call, a third of the planning time under a backlog.
    """

    where: Where
    kind: Literal["literal", "expression", "template"]
    text: Any
    _template: Template | None = None
    _globals: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    _direct: Getter | None = field(default=None, hash=False, compare=False)

    def render(self, context: dict[str, Any]) -> Any:
        """The value for this event; MappingError (with file, line and path) when it cannot be computed."""
        if self.kind == "literal":
            return self.text
        if self._direct is not None:
            try:
                return self._direct(context, self._globals)
            except Exception:  # noqa: BLE001 - _Unusual or an error: Jinja renders it and raises its own
                pass
        template = self._template
        assert template is not None
        try:
            scope = template.environment.context_class(
                template.environment, {**self._globals, **context}, template.name, template.blocks, self._globals
            )
            if self.kind == "expression":
                for _ in template.root_render_func(scope):
                    pass
                result = scope.vars["result"]
                if isinstance(result, Undefined):
                    result._fail_with_undefined_error()
                return result
            return "".join(template.root_render_func(scope))
        except MappingError:
            raise
        except Exception as exc:  # noqa: BLE001 - any template failure becomes a recorded mapping error
            raise MappingError(f"{self.where}: {exc.__class__.__name__}: {_short(exc)}") from exc


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def compile_value(environment: SandboxedEnvironment, value: Any, where: Where) -> CompiledValue:
    """Compile a mapping value; MappingError with the line for a template syntax error."""
    if not is_template(value):
        return CompiledValue(where, "literal", value)
    try:
        single = _SINGLE_EXPRESSION.match(value)
        if single:
            # compile_expression's checks and its `result = <expression>` template, rendered like the others.
            expression = single.group("expr")
            template = environment.compile_expression(expression, False)._template
            direct = _direct_output(environment, "{{" + expression + "}}", single=True)
            return CompiledValue(where, "expression", value, template, dict(template.globals), direct)
        template = environment.from_string(value)
        return CompiledValue(
            where, "template", value, template, dict(template.globals), _direct_output(environment, value)
        )
    except TemplateSyntaxError as exc:
        raise MappingError(f"{where}: template syntax error: {exc.message}") from None


Getter = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
"""A direct evaluation: (the event's context, the environment's globals) → the value; raises _Unusual for what it
does not cover."""


class _Unusual(Exception):
    """What a direct evaluation does not cover: Jinja renders the value instead."""


_DICT_ATTRIBUTES = frozenset(dir(dict))
"""`meta.items` is the dict's method in Jinja (getattr comes before the key): never read as a key here."""


def _direct_output(environment: SandboxedEnvironment, source: str, *, single: bool = False) -> Getter | None:
    """A direct evaluation of a template made of text and key-and-filter expressions only; None for any other.

    `single`: the value is its one expression, returned as is (not turned into a string), as compile_expression
    does. Otherwise the parts are joined with `str()`, as Jinja's generated code does without autoescape."""
    try:
        body = environment.parse(source).body
    except TemplateSyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[str | Getter] = []
    for child in body[0].nodes:
        if isinstance(child, nodes.TemplateData):
            parts.append(child.data)
        else:
            getter = _direct(environment, child)
            if getter is None:
                return None
            parts.append(getter)
    if single:
        only = parts[0] if len(parts) == 1 else None
        return only if only is not None and not isinstance(only, str) else None
    frozen = tuple(parts)

    def joined(context: Mapping[str, Any], globals_: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else str(p(context, globals_)) for p in frozen)

    return joined


def _direct(environment: SandboxedEnvironment, node: nodes.Node) -> Getter | None:
    """The direct evaluation of one expression node, or None when it is not names, keys, constants, `or`, `and`,
    `not` and filters (plain functions, as ours are) with such arguments."""
    if isinstance(node, nodes.Const):
        constant = node.value
        return lambda _c, _g: constant
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return _name(node.name)
    if isinstance(node, nodes.Getattr) and node.ctx == "load":
        inner = _direct(environment, node.node)
        return None if inner is None else _key(inner, node.attr, attribute=True)
    if isinstance(node, nodes.Getitem) and node.ctx == "load" and isinstance(node.arg, nodes.Const):
        inner = _direct(environment, node.node)
        return None if inner is None or not isinstance(node.arg.value, str) else _key(inner, node.arg.value)
    if isinstance(node, (nodes.Or, nodes.And)):
        left, right = _direct(environment, node.left), _direct(environment, node.right)
        if left is None or right is None:
            return None
        if isinstance(node, nodes.Or):
            return lambda c, g: left(c, g) or right(c, g)
        return lambda c, g: left(c, g) and right(c, g)
    if isinstance(node, nodes.Not):
        operand = _direct(environment, node.node)
        return None if operand is None else (lambda c, g: not operand(c, g))
    if isinstance(node, nodes.Filter):
        return _filter(environment, node)
    return None


def _name(name: str) -> Getter:
    def resolve(context: Mapping[str, Any], globals_: Mapping[str, Any]) -> Any:
        if name in context:
            return context[name]
        if name in globals_:
            return globals_[name]
        raise _Unusual  # undefined: Jinja raises StrictUndefined's error

    return resolve


def _key(inner: Getter, key: str, *, attribute: bool = False) -> Getter:
    shadowed = attribute and key in _DICT_ATTRIBUTES

    def read(context: Mapping[str, Any], globals_: Mapping[str, Any]) -> Any:
        value = inner(context, globals_)
        if type(value) is not dict or shadowed or key not in value:
            raise _Unusual
        return value[key]

    return read


def _filter(environment: SandboxedEnvironment, node: nodes.Filter) -> Getter | None:
    function = environment.filters.get(node.name)
    if function is None or getattr(function, "jinja_pass_arg", None) is not None or node.node is None:
        return None  # unknown (Jinja's error), or wants the context or environment: Jinja calls it
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        return None
    value = _direct(environment, node.node)
    args = [_direct(environment, a) for a in node.args]
    kwargs = {k.key: _direct(environment, k.value) for k in node.kwargs}
    if value is None or any(a is None for a in args) or any(v is None for v in kwargs.values()):
        return None
    arg_getters = tuple(a for a in args if a is not None)
    kwarg_getters = {k: v for k, v in kwargs.items() if v is not None}

    def call(context: Mapping[str, Any], globals_: Mapping[str, Any]) -> Any:
        return function(
            value(context, globals_),
            *(a(context, globals_) for a in arg_getters),
            **{k: v(context, globals_) for k, v in kwarg_getters.items()},
        )

    return call


def referenced_paths(environment: SandboxedEnvironment, value: str) -> set[str]:
    """Dotted variable paths a template reads (`record.phone.e164`), for `validate` to check."""
    try:
        tree = environment.parse(value)
    except TemplateSyntaxError:
        return set()
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    paths: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        path = _dotted(node)
        if path and path.split(".")[0] not in assigned:
            paths.add(path)
    # Keep only the longest paths: `record.phone.e164` implies `record.phone` and `record`.
    return {p for p in paths if not any(o != p and o.startswith(p + ".") for o in paths)}


def _dotted(node: nodes.Node) -> str | None:
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            if node.ctx != "load":
                return None
            parts.append(node.name)
            return ".".join(reversed(parts))
        else:
            return None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "…"
