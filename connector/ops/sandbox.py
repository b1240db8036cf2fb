"""`connector serve --sandbox`: a working connector with no credentials and no config file to write.

On first start it writes `connector-sandbox.yaml` in the working directory (a SQLite store beside
it and a generated webhook token) and reuses it afterwards, so the token survives restarts and
every other command works with `--config connector-sandbox.yaml`. It also starts the HubSpot and
Salesforce emulators (loopback, seeded with a few contacts, including one for the sample call's
number) and points two sinks at them, so a posted call lands on a contact in both emulated CRMs.

The emulators keep their data in memory: a restart starts them empty again, so the sandbox then
forgets which emulated contacts it had resolved (the contact cache and field precedence of the
sandbox sinks), and nothing points at records that no longer exist.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete

from connector.config import Settings, load_settings
from connector.ledger import Ledger
from connector.sample import SAMPLE_PHONE

SANDBOX_CONFIG = "connector-sandbox.yaml"
SANDBOX_DB = "connector-sandbox.db"
TOKEN_ENV = "TWOX_WEBHOOK_TOKEN"
SANDBOX_SINKS = ("hubspot", "salesforce")


@dataclass
class Emulators:
    """The two CRM emulators of a sandbox, running in this process."""

    hubspot: Any
    salesforce: Any
    owner_pid: int = 0
    """The process running the emulator threads; gunicorn's forked workers inherit this object
    (and run the same `finally` on exit) but not the threads, so only the owner may stop them."""

    @classmethod
    def start(cls) -> Emulators:
        from connector.emulators.hubspot.server import HubSpotEmulator
        from connector.emulators.salesforce.server import SalesforceEmulator

        hubspot = HubSpotEmulator(seed_custom_properties=True)
        hubspot.start()
        salesforce = SalesforceEmulator()
        salesforce.start()
        return cls(hubspot, salesforce, os.getpid())

    def stop(self) -> None:
        if os.getpid() != self.owner_pid:
            return
        self.hubspot.stop()
        self.salesforce.stop()

    def sinks(self) -> dict[str, Any]:
        from connector.emulators.hubspot.server import DEFAULT_TOKEN
        from connector.emulators.salesforce.server import DEFAULT_SESSION_ID

        return {
            "hubspot": {"type": "hubspot", "access_token": DEFAULT_TOKEN, "base_url": self.hubspot.url},
            "salesforce": {
                "type": "salesforce",
                "instance_url": self.salesforce.instance_url,
                "auth": {"session_id": DEFAULT_SESSION_ID},
                "ca_bundle": self.salesforce.ca_file,
            },
        }


def sandbox_config_path(workdir: Path) -> Path:
    return workdir / SANDBOX_CONFIG


def sandbox_settings(workdir: Path, emulators: Emulators | None = None) -> Settings:
    """Load the sandbox config, writing it first when it does not exist yet.

    The token is `${TWOX_WEBHOOK_TOKEN}` when that variable is set, else a generated one written
    into the file (readable by the owner only). With emulators, the `sinks` section is rewritten
    to point at them (their ports and CA file change at every start).
    """
    path = sandbox_config_path(workdir)
    if path.exists():
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    else:
        token = f"${{{TOKEN_ENV}}}" if os.environ.get(TOKEN_ENV) else f"sandbox-{secrets.token_urlsafe(24)}"
        document = {
            "receiver": {"auth": {"header": "Authorization", "tokens": [token]}},
            "store": {"url": f"sqlite:///{SANDBOX_DB}"},
            "serve": {"workers": 2},
            "worker": {"poll_interval_s": 0.2},
            "sinks": {},
        }
    if "dashboard" not in document:  # also for sandbox files written before the dashboard existed
        document["dashboard"] = {"username": "admin", "password": f"dash-{secrets.token_urlsafe(12)}"}
    if emulators is not None:
        document["sinks"] = emulators.sinks()
    header = (
        "# Written by `connector serve --sandbox`; the sinks point at this run's CRM emulators.\n"
        "# Edit freely, or delete it to start over.\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return load_settings(path)


def forget_emulated_contacts(settings: Settings) -> None:
    """The emulators start empty: drop what the sandbox sinks remembered about emulated contacts."""
    from connector.ledger.schema import contact_cache, field_state

    ledger = Ledger.open(settings.store)
    try:
        with ledger.engine.begin() as connection:
            for table in (contact_cache, field_state):
                connection.execute(delete(table).where(table.c.sink.in_(SANDBOX_SINKS)))
    finally:
        ledger.dispose()


CURL_SAMPLE = json.dumps(
    {
        "id": "curl-sample-1",
        "call": {"end_reason": "no_answer", "answered": False, "duration": 0},
        "record_phone_number": SAMPLE_PHONE,
        "record_first_name": "John",
        "record_last_name": "Doe",
        "record_timezone": "UTC-5",
    },
    separators=(",", ":"),
)
"""A short valid body for the banner's curl line (posting it twice answers 200 "duplicate")."""


def banner(
    settings: Settings,
    config_path: Path,
    emulators: Emulators | None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> list[str]:
    """The sandbox's lines of the start-up block (connector.ops.startup prints the rest: where it listens, the webhook,
    the store, the sinks, the dashboard URL, the worker): the token and dashboard login (a sandbox only has
    throw-away secrets, so it prints them), the emulators, and what to do next."""
    receiver = settings.receiver
    url = f"http://{host or receiver.host}:{port or receiver.port}{receiver.path}"
    token = receiver.auth.tokens[0].get_secret_value()
    lines = [
        "  Mode        : sandbox (no CRM credentials needed)",
        f"  Token       : {token}",
        f"  Config      : {config_path}",
    ]
    dashboard = settings.dashboard
    if dashboard.enabled and dashboard.password is not None:
        lines.append(f"  Login       : user {dashboard.username}, password {dashboard.password.get_secret_value()}")
    if emulators is not None:
        from connector.emulators.hubspot.server import DEFAULT_TOKEN
        from connector.emulators.salesforce.server import DEFAULT_SESSION_ID

        lines += [
            f"  HubSpot     : {emulators.hubspot.url}  (emulator, token {DEFAULT_TOKEN})",
            f"  Salesforce  : {emulators.salesforce.instance_url}  (emulator, session {DEFAULT_SESSION_ID})",
        ]
    lines += [
        "",
        "Post a sample call from another terminal:",
        f"  connector send-sample --url {url} --header {receiver.auth.header} --token {token}",
        "or with curl (the header's value is the token itself: no 'Bearer ' in front):",
        f"  curl -s {url} -H '{receiver.auth.header}: {token}' -H 'Content-Type: application/json' -d '{CURL_SAMPLE}'",
        "Then see what happened to it (the answer shows the event id): where it was stored, the plan,",
        "every CRM attempt and the CRM ids it created:",
        f"  connector status --config {config_path} EVENT_ID",
    ]
    if emulators is not None:
        from connector.emulators.hubspot.server import DEFAULT_TOKEN
        from connector.emulators.salesforce.server import DEFAULT_SESSION_ID

        lines += [
            "And read it back from the emulated CRMs:",
            f"  curl -s -H 'Authorization: Bearer {DEFAULT_TOKEN}' "
            f"'{emulators.hubspot.url}/crm/v3/objects/calls?properties=hs_call_title,hs_call_external_id"
            "&associations=contacts'",
            f"  curl -s --cacert {emulators.salesforce.ca_file} -H 'Authorization: Bearer {DEFAULT_SESSION_ID}' "
            f"'{emulators.salesforce.instance_url}/services/data/v62.0/query?q="
            "SELECT+Subject,CallObject,WhoId+FROM+Task'",
        ]
    return lines + [""]
