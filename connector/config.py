"""The connector's YAML configuration: `${VAR}` expansion, typed models, every problem reported at once.

The models are the single source of truth for what a config may say: unknown keys are errors
(a typo such as `max_body_byte` must not silently fall back to a default), each field carries a
description, and secrets are `SecretStr` so they never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
)

from connector import defaults
from connector.dashboard.settings import DashboardSettings
from connector.engine.retry import RetryPolicy
from connector.errors import ConfigError, ConfigProblem
from connector.hints import remember_config
from connector.sinks.registry import settings_model
from connector.sinks.settings import PluginSinkSettings, RateLimitSettings, SinkSettingsBase
from connector.yaml_problems import yaml_problem

__all__ = [
    "AuthSettings",
    "LoggingSettings",
    "PhoneSettings",
    "PluginSinkSettings",
    "RateLimitSettings",
    "ReceiverSettings",
    "ServeSettings",
    "Settings",
    "SinkSettings",
    "StoreSettings",
    "WorkerSettings",
    "load_settings",
    "parse_settings",
]

_MOVED = {
    "HubSpotSinkSettings": "connector.sinks.hubspot.settings",
    "SalesforceSinkSettings": "connector.sinks.salesforce.settings",
    "SalesforceAuthSettings": "connector.sinks.salesforce.settings",
}
"""Sink settings models now owned by their sink packages, still importable from here (loaded on first use, so
this module imports no concrete sink)."""


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ENV_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP field name: RFC 9110's `token` (section 5.1)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSettings(_Model):
    """How 2X authenticates: a header name agreed with 2X and the exact value it sends."""

    header: str = Field(
        defaults.AUTH_HEADER, min_length=1, description="Name of the HTTP header 2X sends the token in."
    )
    tokens: list[SecretStr] = Field(
        min_length=1,
        description="Accepted header values, compared exactly and in constant time; list two while rotating.",
    )

    @field_validator("header")
    @classmethod
    def _header_is_a_field_name(cls, header: str) -> str:
        # A name no HTTP request can carry (a space, a colon) would answer every webhook 401.
        if not _HEADER_NAME.fullmatch(header):
            raise ValueError(
                f"{header!r} is not an HTTP header name: letters, digits and !#$%&'*+-.^_`|~ only, "
                "no spaces or colons (RFC 9110), e.g. Authorization or X-2X-Token"
            )
        return header

    @field_validator("tokens")
    @classmethod
    def _tokens_not_empty(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        for token in tokens:
            if not token.get_secret_value().strip():
                raise ValueError("a token is empty (is its environment variable set to an empty value?)")
        return tokens


class ReceiverSettings(_Model):
    """The HTTP endpoint 2X posts to."""

    host: str = Field(defaults.RECEIVER_HOST, description="Interface to bind; loopback unless a proxy fronts it.")
    port: int = Field(defaults.RECEIVER_PORT, ge=1, le=65535, description="TCP port to listen on.")
    path: str = Field(defaults.RECEIVER_PATH, pattern=r"^/", description="URL path of the post-call webhook.")
    max_body_bytes: int = Field(
        defaults.MAX_BODY_BYTES, ge=1024, description="Larger bodies are refused with 413 before being read whole."
    )
    auth: AuthSettings = Field(description="Header name and accepted tokens.")
    allowed_sources: list[str] = Field(
        default_factory=list,
        description="IP networks (CIDR) allowed to post webhooks; empty: any. Others get 403 before auth.",
    )
    proxy_hops: int = Field(
        0,
        ge=0,
        le=5,
        description="Reverse proxies in front (X-Forwarded-For entries trusted "
        "to find the client address); 0 when none.",
    )

    @field_validator("allowed_sources")
    @classmethod
    def _networks(cls, sources: list[str]) -> list[str]:
        import ipaddress

        for source in sources:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ValueError(f"{source!r} is not an IP network such as 203.0.113.0/24") from None
        return sources


class StoreSettings(_Model):
    """Where events, deliveries and quarantined bodies are kept."""

    url: str = Field(defaults.STORE_URL, description="SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://…")
    sqlite_busy_timeout_ms: int = Field(
        defaults.SQLITE_BUSY_TIMEOUT_MS, ge=0, description="SQLite only: how long a writer waits for the write lock."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        defaults.SQLITE_SYNCHRONOUS,
        description="SQLite only: FULL survives power loss; NORMAL survives process crashes only.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description=(
            "Purge the personal content of settled calls (raw body, transcript, phone, plan), quarantined bodies, "
            "cached look-ups and remembered answers older than this many days; ids and hashes stay for duplicate "
            "detection. Workers purge hourly; `connector purge` does it now. Unset keeps everything."
        ),
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not (url.startswith("sqlite:") or url.startswith("postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return url


class PhoneSettings(_Model):
    """How lead phone numbers are normalized to E.164."""

    default_region: str = Field(
        defaults.PHONE_DEFAULT_REGION,
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 region used for numbers sent without a country code.",
    )

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region} is not a region phonenumbers knows (e.g. US, CA, GB, DE, FR, AU)")
        return region


class ServeSettings(_Model):
    """Process settings of `connector serve`."""

    workers: int = Field(defaults.SERVE_WORKERS, ge=1, le=64, description="gunicorn worker processes for the receiver.")
    timeout_s: int = Field(defaults.SERVE_TIMEOUT_S, ge=1, description="gunicorn worker timeout in seconds.")


class WorkerSettings(_Model):
    """The delivery worker: embedded in `connector serve`, or standalone `connector worker` processes."""

    embedded: bool = Field(True, description="`connector serve` also runs one worker process.")
    batch_size: int = Field(
        100,
        ge=1,
        le=500,
        description="Deliveries claimed at once; under a backlog a sink "
        "with batch APIs sends their actions in batches (100 "
        "fills one HubSpot batch request).",
    )
    poll_interval_s: float = Field(0.5, gt=0, le=30, description="Sleep between claims when nothing is due.")
    lease_s: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="A claimed delivery returns to others after this, "
        "unless renewed (a dead worker's work is recovered).",
    )
    auth_probe_s: float = Field(30.0, ge=1, description="How often a paused sink tests its credentials again.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    contact_cache_s: float = Field(
        86_400,
        ge=0,
        description="How long a phone → contact resolution is reused without searching the CRM (0: always search).",
    )
    redis_url: str | None = Field(None, description="Share rate budgets through Redis instead of the store.")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`connector worker` serves its delivery counters at http://metrics_host:PORT/metrics "
        "(0: a free port, printed at start; null: none). Not the embedded worker: serve's /metrics has its counters.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the standalone worker's /metrics listens on (loopback unless you open it)."
    )


class LoggingSettings(_Model):
    """Log output; personal data is never logged whatever the level."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Minimum level written.")
    json_lines: bool = Field(False, alias="json", description="One JSON object per line instead of plain text.")


def _registered_sink(value: Any) -> SinkSettingsBase | PluginSinkSettings:
    """A sink section, validated by the settings model its type declares in the registry (errors keep their place,
    e.g. ``sinks.hs.access_token``); an undeclared or uninstalled type keeps its keys for the plugin (preflight
    then names the installed types)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    model = settings_model(kind) if isinstance(kind, str) else PluginSinkSettings
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_unset=True)
    return model.model_validate(value)


SinkSettings = Annotated[SinkSettingsBase | PluginSinkSettings, PlainValidator(_registered_sink)]
"""A `sinks.<name>` section: an instance of its type's ``settings_model`` (connector.sinks.settings)."""


class Settings(_Model):
    """The whole configuration file."""

    receiver: ReceiverSettings
    store: StoreSettings = Field(default_factory=StoreSettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    sinks: dict[str, SinkSettings] = Field(default_factory=dict, description="Named CRM sinks; {} only stores.")
    dashboard: DashboardSettings = Field(
        default_factory=DashboardSettings, description="The operations dashboard (served only with a password)."
    )
    base_dir: Path = Field(Path("."), exclude=True, description="Folder of the config file; relative paths start here.")
    source: str = Field("<config>", exclude=True, description="The config file's name, for error messages.")

    def enabled_sinks(self) -> list[str]:
        """Names of the sinks that receive new deliveries, sorted for a stable order."""
        return sorted(name for name, sink in self.sinks.items() if sink.enabled)


def expand_env(
    node: Any,
    environ: dict[str, str],
    path: str,
    problems: list[ConfigProblem],
    *,
    needed: Callable[[str], bool] = lambda path: True,
) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree (`$$` is a literal `$`).

    Expansion happens after parsing, so a variable's value can never change the YAML structure. A variable
    that is unset, or set to an empty value without a `:-default`, is one problem naming the variable and
    the YAML path; where `needed(path)` is False (a command that never uses that value) it is left as written.
    """
    if isinstance(node, dict):
        return {k: expand_env(v, environ, _join(path, str(k)), problems, needed=needed) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems, needed=needed) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if environ.get(name, "") != "":
            return environ[name]
        if default is not None:
            return default
        if not needed(path):
            return match.group(0)
        state = "is set but empty" if name in environ else "is not set"
        problems.append(ConfigProblem(path or "<root>", f"environment variable {name} {state}"))
        return ""

    return _ENV_PATTERN.sub(substitute, node)


def store_only(path: str) -> bool:
    """For commands that only read the ledger (`status`, `quarantine list`): only `store.*` must be usable,
    so an operator can look at the ledger without the CRM and webhook secrets in the environment, or with a
    config holding just the `store` section (`receiver` is then not read at all)."""
    return path == "store" or path.startswith("store.")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = _join(path, str(part))
    return path or "<root>"


def parse_settings(
    document: Any,
    *,
    source: str,
    base_dir: Path,
    environ: dict[str, str] | None = None,
    needed: Callable[[str], bool] = lambda path: True,
) -> Settings:
    """Validate an already-parsed YAML document; raise one ConfigError listing every problem, once per cause."""
    problems: list[ConfigProblem] = []
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(source, [ConfigProblem("<root>", "the configuration must be a mapping of sections")])
    expanded = expand_env(document, dict(os.environ if environ is None else environ), "", problems, needed=needed)
    if not needed("receiver"):
        expanded = {**expanded, "receiver": _unused_receiver()}
    try:
        settings = Settings.model_validate({**expanded, "base_dir": base_dir, "source": source})
    except ValidationError as exc:
        unset = [p.path for p in problems]
        for err in exc.errors(include_url=False, include_input=False):
            place = _loc_to_path(err["loc"])
            if not any(_same_cause(place, path) for path in unset):
                problems.append(ConfigProblem(place, err["msg"]))  # else: the unset variable is the cause
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return _resolve_relative_paths(settings, base_dir)


def _unused_receiver() -> dict[str, Any]:
    """The receiver section of a command that receives nothing (`status`, `quarantine list|show`): the file's may
    be missing or incomplete and is not read; a random token stands in, so these settings open no webhook."""
    return {"auth": {"tokens": [secrets.token_urlsafe(32)]}}


def _same_cause(place: str, unset: str) -> bool:
    """A validation error at `place` caused by the unset variable at `unset`: the same value, a part of it,
    or the list holding it (a list validator reports the list, e.g. `tokens` for `tokens[0]`)."""
    return place == unset or place.startswith((unset + ".", unset + "[")) or unset.startswith(place + "[")


def _resolve_relative_paths(settings: Settings, base_dir: Path) -> Settings:
    """A relative SQLite file lives beside the config file, wherever the command is run from."""
    url = settings.store.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        relative = url[len(prefix) :]
        if relative and not relative.startswith(":memory:"):
            store = settings.store.model_copy(update={"url": prefix + str((base_dir / relative).resolve())})
            return settings.model_copy(update={"store": store})
    return settings


def load_settings(
    path: str | Path, *, environ: dict[str, str] | None = None, needed: Callable[[str], bool] = lambda path: True
) -> Settings:
    """Read, expand and validate a config file (`needed`: which YAML paths must have their variables set)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [ConfigProblem("<root>", f"cannot read the file: {exc.strerror}")]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(file), [yaml_problem(exc)]) from None
    settings = parse_settings(
        document, source=str(file), base_dir=file.resolve().parent, environ=environ, needed=needed
    )
    remember_config(file)
    return settings
