"""Loads a mapping file: YAML with line numbers, schema validation, template compilation, sanity rules.

Every problem is reported at once, each with the file, line and YAML path, so sales ops fix a
mapping in one pass. The result keeps every template compiled, keyed by its YAML path.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.errors import ConfigError, ConfigProblem, MappingError
from connector.mapping.reads import certain_failures
from connector.mapping.schema import BundleSpec, ContactValue, Mapping
from connector.mapping.templates import CompiledValue, Where, compile_value, make_environment
from connector.payload import END_REASON_ALIASES, FAILURE_REASON_ALIASES, EndReason, FailureReason
from connector.yaml_problems import yaml_problem


@dataclass
class LoadedMapping:
    """A validated mapping with its templates compiled."""

    spec: Mapping
    source: str
    sha256: str
    lines: dict[str, int]
    values: dict[str, CompiledValue] = field(default_factory=dict)
    environment: Any = None
    """The sandboxed Jinja2 environment the templates were compiled in."""

    def value(self, path: str) -> CompiledValue:
        return self.values[path]

    def where(self, path: str) -> Where:
        return Where(self.source, path, self.lines.get(path))


def load_mapping(path: str | Path) -> LoadedMapping:
    """Read and validate a mapping file; ConfigError listing every problem with its line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [ConfigProblem("<root>", f"cannot read the mapping: {exc.strerror}")]) from None
    return parse_mapping(text, source=str(file))


def parse_mapping(text: str, *, source: str) -> LoadedMapping:
    """Validate mapping text (see `load_mapping`)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [yaml_problem(exc)]) from None
    lines: dict[str, int] = {}
    if node is not None:
        _index_lines(node, "", lines)
    try:
        spec = Mapping.model_validate(document if document is not None else {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            path = _loc_path(error["loc"])
            problems.append(ConfigProblem(_with_line(path, lines), error["msg"]))
        raise ConfigError(source, problems) from None
    loaded = LoadedMapping(spec, source, hashlib.sha256(text.encode()).hexdigest(), lines)
    problems = _semantic_problems(spec, lines)
    problems += _compile_all(loaded)
    if not problems:
        problems += certain_failures(loaded.values, loaded.environment, spec)
    if problems:
        raise ConfigError(source, problems)
    return loaded


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines.setdefault(path or "<root>", node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, f"{path}[{index}]", lines)


def _loc_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part) in (
            "str",
            "int",
            "float",
            "bool",
            "none",
            "ContactValue",
            "list[RedactionRule]",
            "literal['default','none']",
        ):
            continue  # pydantic's union member names are not YAML keys
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "<root>"


def _with_line(path: str, lines: dict[str, int]) -> str:
    probe = path
    while probe and probe not in lines:
        probe = probe.rsplit(".", 1)[0] if "." in probe else ""
    return f"{path} (line {lines[probe]})" if probe in lines else path


def _semantic_problems(spec: Mapping, lines: dict[str, int]) -> list[ConfigProblem]:
    """Rules a schema cannot express: canonical outcome names, do-not-call only ever true."""
    problems: list[ConfigProblem] = []
    bundles = [(f"outcomes[{i}]", b) for i, b in enumerate(spec.outcomes)] + [("fallback", spec.fallback)]
    whens = [(p, b.when) for p, b in bundles if b.when] + [(f"also[{i}]", a.when) for i, a in enumerate(spec.also)]
    for path, when in whens:
        for value in when.end_reason or []:
            if value not in EndReason.__members__.values():
                problems.append(_outcome_problem(f"{path}.when.end_reason", value, END_REASON_ALIASES, lines))
        for value in when.failure_reason or []:
            if value not in ("none", "any") and value not in FailureReason.__members__.values():
                problems.append(_outcome_problem(f"{path}.when.failure_reason", value, FAILURE_REASON_ALIASES, lines))
    sections = [(f"{p}.contact", b.contact) for p, b in bundles]
    sections += [(f"also[{i}].contact", a.contact) for i, a in enumerate(spec.also)]
    sections += [("contact_updates", spec.contact_updates)]
    for path, values in sections:
        for prop, value in values.items():
            raw = value.value if isinstance(value, ContactValue) else value
            if spec.precedence.is_do_not_call(prop) and raw is not True:
                problems.append(
                    ConfigProblem(
                        _with_line(f"{path}.{prop}", lines),
                        "a do-not-call property may only be set to true: the connector never clears do-not-call",
                    )
                )
    return problems


def _outcome_problem(path: str, value: str, aliases: Any, lines: dict[str, int]) -> ConfigProblem:
    canonical = aliases.get(value.strip().lower().replace(" ", "_").replace("-", "_"))
    hint = f"; use {canonical.value}" if canonical else ""
    if not canonical:
        close = difflib.get_close_matches(value, [m.value for m in type(next(iter(aliases.values())))], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigProblem(_with_line(path, lines), f"{value!r} is not a canonical value{hint}")


def _compile_all(loaded: LoadedMapping) -> list[ConfigProblem]:
    """Compile every template value, keyed by YAML path; collect syntax errors."""
    spec = loaded.spec
    environment = make_environment()
    problems: list[ConfigProblem] = []

    def add(path: str, value: Any) -> None:
        try:
            loaded.values[path] = compile_value(environment, value, loaded.where(path))
        except MappingError as exc:
            problems.append(ConfigProblem(_with_line(path, loaded.lines), str(exc).split(": ", 1)[-1]))

    for prop, value in spec.contact.create.items():
        add(f"contact.create.{prop}", value)
    add("activity.idempotency_key", spec.activity.idempotency_key)
    for prop, value in spec.activity.properties.items():
        add(f"activity.properties.{prop}", value)
    for prop, value in spec.contact_updates.items():
        add(f"contact_updates.{prop}", value.value if isinstance(value, ContactValue) else value)
    bundles: list[tuple[str, BundleSpec | Any]] = [(f"outcomes[{i}]", b) for i, b in enumerate(spec.outcomes)]
    bundles += [("fallback", spec.fallback)] + [(f"also[{i}]", a) for i, a in enumerate(spec.also)]
    for path, bundle in bundles:
        for prop, value in bundle.contact.items():
            add(f"{path}.contact.{prop}", value.value if isinstance(value, ContactValue) else value)
        for prop, value in bundle.activity.items():
            add(f"{path}.activity.{prop}", value)
    for name, task in spec.tasks.items():
        for prop, value in task.properties.items():
            add(f"tasks.{name}.properties.{prop}", value)
    loaded.environment = environment
    return problems
