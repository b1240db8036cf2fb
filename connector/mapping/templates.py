"""Mapping values as sandboxed Jinja2 templates, compiled once at load, rendered per event.

A value is one of three things:
- a literal (`true`, `42`, `"COMPLETED"`): used as is;
- a single expression (`"{{ call.duration_ms }}"`): evaluated to its native type, so numbers stay
  numbers and booleans stay booleans for CRMs with typed fields;
- a template (`"2X call: {{ outcome.label }}"`): rendered to a string.

`StrictUndefined` turns a typo or a missing key into an error naming the mapping line, instead of
an empty string silently written to a CRM.
"""

from __future__ import annotations

import re
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

    def render(self, context: dict[str, Any]) -> Any:
        """The value for this event; MappingError (with file, line and path) when it cannot be computed."""
        if self.kind == "literal":
            return self.text
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
            template = environment.compile_expression(single.group("expr"), False)._template
            return CompiledValue(where, "expression", value, template, dict(template.globals))
        template = environment.from_string(value)
        return CompiledValue(where, "template", value, template, dict(template.globals))
    except TemplateSyntaxError as exc:
        raise MappingError(f"{where}: template syntax error: {exc.message}") from None


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
