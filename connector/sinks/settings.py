"""Settings every sink section shares (``enabled``, ``mapping``, ``rate_limit``), and the fallback model.

Each sink type owns the model of its own section (``SinkType.settings_model``, see connector.sinks.base);
``connector.config`` asks the registry for it, so a third-party sink is validated exactly like a built-in
one. This module imports nothing from ``connector.config``: the sink packages build on it without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ON_MISSING_FIELD = (
    "When the CRM refuses a field as missing or not writable: `skip` writes the rest of the event "
    "and warns; `hold` pauses the sink until crm-setup. A missing do-not-call field always pauses."
)


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must not fall back to a default); validated settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitSettings(StrictModel):
    """A request budget shared by every worker of a store."""

    requests: int = Field(ge=1, description="Requests allowed per window.")
    window_s: float = Field(10.0, gt=0, description="Window length in seconds.")


class SinkSettingsBase(StrictModel):
    """The keys of every sink section; a sink type's settings model subclasses it and adds its own."""

    enabled: bool = Field(True, description="A disabled sink keeps its config but receives no new deliveries.")
    mapping: str | None = Field(
        None,
        description="Mapping YAML file, relative to the config file "
        "(default: the packaged mapping for the sink's type).",
    )
    rate_limit: RateLimitSettings | None = Field(None, description="Override the sink's default request budget.")
    type: str
    """The sink type (a `connector.sinks` entry point); a subclass narrows it to its own name. Declared last so
    the generated configuration reference keeps its column order."""


class PluginSinkSettings(BaseModel):
    """A sink type that declares no settings model (or is not installed): the common keys, the rest kept as is.

    Its own keys are then validated by the plugin when the sink is built.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    enabled: bool = True
    mapping: str | None = None
    rate_limit: RateLimitSettings | None = None
