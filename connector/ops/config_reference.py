"""Generates docs/configuration.md from the config models, so the reference cannot drift from the code.

`python -m connector.ops.config_reference > docs/configuration.md`; a test fails when the committed
file differs from what this prints.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connector.config import (
    AuthSettings,
    LoggingSettings,
    PhoneSettings,
    ReceiverSettings,
    ServeSettings,
    Settings,
    StoreSettings,
    WorkerSettings,
)
from connector.dashboard.settings import DashboardSettings
from connector.engine.retry import RetryPolicy
from connector.sinks.hubspot.settings import HubSpotSinkSettings
from connector.sinks.salesforce.settings import SalesforceAuthSettings, SalesforceSinkSettings
from connector.sinks.settings import RateLimitSettings

_PIPE = "\\|"
"""A pipe inside a Markdown table cell."""

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("receiver", ReceiverSettings),
    ("receiver.auth", AuthSettings),
    ("store", StoreSettings),
    ("phone", PhoneSettings),
    ("serve", ServeSettings),
    ("worker", WorkerSettings),
    ("worker.retry", RetryPolicy),
    ("logging", LoggingSettings),
    ("sinks.<name> (type: hubspot)", HubSpotSinkSettings),
    ("sinks.<name> (type: salesforce)", SalesforceSinkSettings),
    ("sinks.<name>.auth (salesforce)", SalesforceAuthSettings),
    ("sinks.<name>.rate_limit", RateLimitSettings),
    ("dashboard", DashboardSettings),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return f" {_PIPE} ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, str) and len(value) > 40:
        value = value[:40] + "…"
    return f"`{value!r}`" if not isinstance(value, list) or len(str(value)) < 60 else "`[…]`"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config models by `python -m connector.ops.config_reference` (a test keeps it current).",
        "Every value may use `${VAR}` or `${VAR:-default}`; unknown keys are errors. See `config.example.yaml`.",
        "A `${VAR}` that is unset or set to an empty value is an error naming the variable and the YAML path "
        "(`${VAR:-}` makes empty allowed). `connector status` and `connector quarantine list|show` read only the "
        "ledger: they need just `store.*`, not the CRM or webhook secrets.",
        "",
        f"Top-level sections: {', '.join(f'`{k}`' for k, f in Settings.model_fields.items() if not f.exclude)}.",
    ]
    for section, model in SECTIONS:
        lines += [
            "",
            f"## `{section}`",
            "",
            (model.__doc__ or "").strip().split("\n")[0],
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, info in model.model_fields.items():
            if info.exclude:  # set by the loader (the config file's folder and name), not written in the YAML
                continue
            key = info.alias or name
            meaning = (info.description or "").replace("|", _PIPE)
            lines.append(f"| `{key}` | {_type_name(info.annotation)} | {_default(info)} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
