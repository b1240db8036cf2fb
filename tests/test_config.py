"""Config loading: ${VAR} expansion, every problem reported with its YAML path, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import HubSpotSinkSettings, PluginSinkSettings, SalesforceSinkSettings, load_settings
from connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


def test_example_config_is_valid_once_its_variable_is_set() -> None:
    settings = load_settings(REPO / "config.example.yaml", environ={"TWOX_WEBHOOK_TOKEN": "s3cr3t-value"})
    assert settings.receiver.auth.tokens[0].get_secret_value() == "s3cr3t-value"
    assert settings.receiver.path == "/webhooks/2x/post-call"
    assert settings.sinks == {}
    assert settings.store.url == f"sqlite:///{REPO / 'connector.db'}"


def test_variables_and_defaults_are_expanded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receiver:
  port: ${PORT:-9090}
  auth: {header: "${HEADER:-X-Auth}", tokens: ["${A}", "pre-${B}-post", "$${LITERAL}"]}
store: {url: "postgresql+psycopg://u@127.0.0.1:5432/${DB:-connector}"}
""",
    )
    settings = load_settings(path, environ={"A": "first", "B": "mid", "HEADER": ""})
    assert settings.receiver.port == 9090
    assert settings.receiver.auth.header == "X-Auth"  # empty value falls back to the default
    assert [t.get_secret_value() for t in settings.receiver.auth.tokens] == ["first", "pre-mid-post", "${LITERAL}"]
    assert settings.store.url.endswith("/connector")


def test_all_problems_are_reported_at_once_with_yaml_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receiver:
  port: 70000
  max_body_byte: 5
  auth: {tokens: ["${MISSING_TOKEN}"]}
store: {url: "mysql://x"}
phone: {default_region: usa}
sinks:
  hub: {type: hubspot, base_url: "http://127.0.0.1:1"}
""",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    found = problems(exc)
    assert "environment variable MISSING_TOKEN is not set" in found["receiver.auth.tokens[0]"]
    assert "receiver.port" in found
    assert "receiver.max_body_byte" in found  # a typo is an error, not a silent default
    assert "store.url" in found
    assert "phone.default_region" in found
    assert "sinks.hub.access_token" in found


@pytest.mark.parametrize("header", ["Bad Header:", "X-Token:", "X Token", "Authorization\u00e9", " Authorization"])
def test_the_auth_header_must_be_an_http_field_name(tmp_path: Path, header: str) -> None:
    """`Bad Header:` passed validate, and then no request could ever carry it: every webhook would be a 401."""
    path = write(tmp_path, f'receiver: {{auth: {{header: "{header}", tokens: [t]}}}}\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert problems(exc) == {
        "receiver.auth.header": f"Value error, {header!r} is not an HTTP header name: letters, digits and "
        "!#$%&'*+-.^_`|~ only, no spaces or colons (RFC 9110), e.g. Authorization or X-2X-Token"
    }
    for good in ("Authorization", "X-2X-Token", "x_twox.token~1"):
        write(tmp_path, f"receiver: {{auth: {{header: {good}, tokens: [t]}}}}\n")
        assert load_settings(path, environ={}).receiver.auth.header == good


def test_secrets_never_appear_in_errors_or_reprs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receiver: {auth: {tokens: ["super-secret-token-value"]}, port: -1}
sinks: {hub: {type: hubspot, access_token: "pat-secret-hubspot", base_url: 5}}
""",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "super-secret" not in str(exc.value) and "pat-secret" not in str(exc.value)
    good = write(tmp_path, 'receiver: {auth: {tokens: ["super-secret-token-value"]}}\n')
    assert "super-secret" not in repr(load_settings(good))


def test_sink_types_are_told_apart(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receiver: {auth: {tokens: ["t"]}}
sinks:
  hs: {type: hubspot, access_token: "x", mapping: mappings/hubspot.yaml}
  sf: {type: salesforce, instance_url: "https://127.0.0.1:8443", auth: {session_id: "y"}}
  custom: {type: pipedrive, api_key: "z", enabled: false}
""",
    )
    settings = load_settings(path)
    assert isinstance(settings.sinks["hs"], HubSpotSinkSettings)
    assert isinstance(settings.sinks["sf"], SalesforceSinkSettings)
    assert isinstance(settings.sinks["custom"], PluginSinkSettings)
    assert settings.enabled_sinks() == ["hs", "sf"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("receiver: [unclosed", "line 1"),
        ("- a\n- b\n", "<root>"),
        ("receiver: {auth: {tokens: []}}", "receiver.auth.tokens"),
    ],
)
def test_unusable_documents_say_where(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, text))
    assert any(p.path.startswith(where) for p in exc.value.problems)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "nope.yaml")


def test_the_configuration_reference_is_current() -> None:
    """docs/configuration.md is generated from the models: regenerate it when a setting changes."""
    from connector.ops.config_reference import render

    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: python -m connector.ops.config_reference > docs/configuration.md"


def test_config_imports_no_concrete_sink_and_keeps_the_moved_names() -> None:
    """Each sink owns its settings model; connector.config asks the registry, and re-exports the moved models
    lazily (a fresh interpreter: importing the config loads no sink package)."""
    import subprocess
    import sys

    probe = (
        "import sys, connector.config as c\n"
        "print(sorted(m for m in sys.modules if m.startswith(('connector.sinks.hubspot', 'connector.sinks.salesforce'))))\n"
        "from connector.sinks.salesforce.settings import SalesforceAuthSettings\n"
        "print(c.SalesforceAuthSettings is SalesforceAuthSettings)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
    source = (REPO / "connector" / "config.py").read_text()
    assert '"hubspot"' not in source and '"salesforce"' not in source  # no switch on type names


def test_each_sink_section_is_validated_by_its_types_model_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receiver: {auth: {tokens: ["t"]}}
sinks:
  hubspot: {type: hubspot, access_tokn: "x"}
  web: {type: http, url: "http://127.0.0.1:1", timeout_s: 0}
""",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert set(problems(exc)) == {"sinks.hubspot.access_token", "sinks.hubspot.access_tokn", "sinks.web.timeout_s"}
