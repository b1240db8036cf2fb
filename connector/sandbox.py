"""`connector serve --sandbox`: a working connector with no credentials and no config file to write.

On first start it writes `connector-sandbox.yaml` in the working directory (a SQLite store beside
it and a generated webhook token), and reuses that file afterwards, so the token survives restarts
and every other command works with `--config connector-sandbox.yaml`. The CRM emulators join in
later releases. The banner tells a new user exactly what to run next.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from connector.config import Settings, load_settings

SANDBOX_CONFIG = "connector-sandbox.yaml"
SANDBOX_DB = "connector-sandbox.db"
TOKEN_ENV = "TWOX_WEBHOOK_TOKEN"


def sandbox_config_path(workdir: Path) -> Path:
    return workdir / SANDBOX_CONFIG


def sandbox_settings(workdir: Path) -> Settings:
    """Load the sandbox config, writing it first when it does not exist yet.

    The token is `${TWOX_WEBHOOK_TOKEN}` when that variable is set, else a generated one written
    into the file (readable by the owner only).
    """
    path = sandbox_config_path(workdir)
    if not path.exists():
        token = "${%s}" % TOKEN_ENV if os.environ.get(TOKEN_ENV) else f"sandbox-{secrets.token_urlsafe(24)}"
        document = {
            "receiver": {"auth": {"header": "Authorization", "tokens": [token]}},
            "store": {"url": f"sqlite:///{SANDBOX_DB}"},
            "serve": {"workers": 2},
            "sinks": {},
        }
        header = "# Written by `connector serve --sandbox`; edit freely or delete to start over.\n"
        path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
    return load_settings(path)


def banner(settings: Settings, config_path: Path, *, host: str | None = None, port: int | None = None) -> str:
    """What to do next, printed before the server starts."""
    receiver = settings.receiver
    url = f"http://{host or receiver.host}:{port or receiver.port}{receiver.path}"
    token = receiver.auth.tokens[0].get_secret_value()
    return "\n".join(
        [
            "2X CRM connector: sandbox mode (no CRM credentials needed)",
            f"  Webhook URL : {url}",
            f"  Header name : {receiver.auth.header}",
            f"  Token       : {token}",
            f"  Store       : {settings.store.url}",
            f"  Config      : {config_path}",
            "",
            "Post a sample call from another terminal:",
            f"  connector send-sample --url {url} --header {receiver.auth.header} --token {token}",
            "Then see what was stored (the answer shows the event id):",
            f"  connector status --config {config_path} EVENT_ID",
            f"  connector quarantine list --config {config_path}",
            "",
        ]
    )
