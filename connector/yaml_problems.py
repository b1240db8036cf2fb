"""A YAML syntax error as one ConfigProblem, for the config file and the mapping files alike."""

from __future__ import annotations

import yaml

from connector.errors import ConfigProblem


def yaml_problem(exc: yaml.YAMLError) -> ConfigProblem:
    """PyYAML's error in words a YAML writer can act on: where, what was expected, and the usual causes.

    `expected <block end>, but found '<scalar>'` alone sends nobody to the indentation or the quotes."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<root>"
    problem = str(getattr(exc, "problem", None) or exc)
    hint = ""
    if "expected <block end>" in problem or "mapping values are not allowed" in problem:
        hint = (
            "; check this line's indentation against the lines above it, and quote a value that holds `: `,"
            " `{{ ... }}` with double quotes inside, or starts with `{`, `[`, `*`, `&` or `%`"
        )
    elif "found character '\\t'" in problem:
        hint = "; YAML indents with spaces, not tabs"
    return ConfigProblem(where, f"not valid YAML: {problem}{hint}")
