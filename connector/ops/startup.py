"""What `connector serve` checks and says before and when it starts: one block, and one `Error:` line per failure.

Why: gunicorn speaks per process (five "dashboard at …" lines for five workers) and fails late and noisily (a
port in use is five seconds of `[ERROR] Connection in use` then "Can't connect"; a read-only store directory a
traceback). Here every check that can fail runs in the master before gunicorn starts, each failure is one
sentence naming what to change (StartupError, printed by the CLI as `Error: …`), and once the port is bound the
master prints one block: where it listens, the webhook, the store, the sinks with their state, the dashboard and
the worker mode.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config import Settings, StoreSettings
from connector.errors import ConnectorError
from connector.hints import command
from connector.ledger._errors import driver_first_line
from connector.loopback import is_loopback_url
from connector.sink_health import SinkCondition


class StartupError(ConnectorError):
    """`serve` cannot start; the message is one sentence with the fix."""


def check_port(host: str, port: int) -> None:
    """Bind the address once (as gunicorn will, with SO_REUSEADDR) and let it go: in use is a StartupError, and so
    is a port outside 1-65535 (the socket module raises OverflowError for those, a traceback)."""
    if not 1 <= port <= 65535:
        raise StartupError(
            f"port {port} is not a TCP port (1-65535): choose another with `receiver.port` in the config or `--port`"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is already in use (another connector or program listens "
                    "there): stop it, or choose another port with `receiver.port` in the config or "
                    "`--port`"
                ) from None
            if exc.errno == errno.EACCES:
                raise StartupError(
                    f"not allowed to listen on port {port} (ports below 1024 need privileges): choose "
                    "another with `receiver.port` in the config or `--port`"
                ) from None
            raise StartupError(
                f"cannot listen on {host}:{port} ({exc.strerror}): check `receiver.host` in the config or `--host`"
            ) from None
        except (TypeError, ValueError) as exc:  # e.g. a NUL in the host: the socket module's own refusal
            raise StartupError(
                f"cannot listen on {host!r} ({exc}): check `receiver.host` in the config or `--host`"
            ) from None


def store_display(url: str) -> str:
    """The store URL as it may be printed: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a valid database URL)"


def check_store_path(store: StoreSettings) -> None:
    """A SQLite store needs a writable directory (its journal, WAL and migration lock live beside the file)."""
    url = make_url(store.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    file = Path(url.database)
    folder = file.parent if str(file.parent) else Path(".")
    if not folder.is_dir():
        raise StartupError(
            f"the store's directory {folder} does not exist: create it, or point `store.url` in the "
            "config at a writable place"
        )
    writable = os.access(folder, os.W_OK) and (not file.exists() or os.access(file, os.W_OK))
    if not writable:
        raise StartupError(
            f"the store {file} cannot be written (its directory or file is read-only): make "
            f"{folder} writable for this user, or point `store.url` in the config at a writable place"
        )


def store_exposure(store: StoreSettings) -> str | None:
    """A warning when other users of this host can read the SQLite store (a file made before the connector created
    it owner-only, or copied with a wider mode): it holds every call's phone number, names and transcript."""
    from connector.ledger.engine import sqlite_file

    file = sqlite_file(store)
    try:
        mode = file.stat().st_mode if file is not None else None
    except OSError:
        return None
    if mode is None or not mode & 0o044:
        return None
    who = "every user" if mode & 0o004 else "its group"
    return (
        f"the store {file} is readable by {who} on this host (mode {stat.S_IMODE(mode):04o}) and holds every "
        f"call's phone number, names and transcript: chmod 600 {file} {file}-wal {file}-shm"
    )


def plaintext_sink_urls(settings: Settings) -> list[str]:
    """A warning for each enabled sink URL that is plain `http://` to another machine: the sink would send every
    call's phone number, names, answers and transcript, and its credentials, unencrypted over the network. A
    warning, not a refusal: refusing to start after an upgrade would leave 2X's webhooks unanswered."""
    warnings = []
    for name in settings.enabled_sinks():
        for field, value in settings.sinks[name].model_dump().items():
            if isinstance(value, str) and value.lower().startswith("http://") and not is_loopback_url(value):
                host = urlsplit(value).hostname or value
                warnings.append(
                    f"sinks.{name}.{field} is plain http:// to {host}: call data (phone numbers, names, transcripts) "
                    "and the sink's credentials would cross the network unencrypted; use https://"
                )
    return warnings


def store_failure(store: StoreSettings, exc: BaseException) -> StartupError:
    """A store that did not open or migrate, as one sentence (the driver's first line; no statement, no password)."""
    cause = exc.__cause__ or exc
    first = driver_first_line(cause) or cause.__class__.__name__
    return StartupError(
        f"cannot open the store {store_display(store.url)} ({first}): check `store.url` in the config "
        f"and that the database is up; `{command('migrate')}` retries the same"
    )


def startup_block(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    sinks: dict[str, SinkCondition],
    extra: list[str] | None = None,
) -> str:
    """The block `serve` prints once it listens (extra: the sandbox's lines)."""
    receiver = settings.receiver
    base = f"http://{host}:{port}"
    lines = [
        f"2X CRM connector listening on {base} ({workers} receiver process{'es' if workers != 1 else ''})",
        f"  Webhook     : POST {base}{receiver.path}  (token in header {receiver.auth.header})",
        f"  Store       : {store_display(settings.store.url)}",
    ]
    if not sinks:
        lines.append("  Sinks       : none (webhooks are only stored)")
    for index, (name, sink) in enumerate(sinks.items()):
        label = "  Sinks       : " if index == 0 else "                "
        kind = settings.sinks[name].type
        lines.append(f"{label}{name} ({kind}): {_sink_words(sink)}")
    lines.append(f"  Dashboard   : {_dashboard(settings, base)}")
    lines.append(f"  Worker      : {_worker_mode(settings)}")
    lines.append(f"  Retention   : {_retention(settings)}")
    lines += extra or []
    lines.append("Stop with Ctrl-C (or SIGTERM): requests in flight and the delivery in hand finish first.")
    return "\n".join(lines)


def _sink_words(sink: SinkCondition) -> str:
    if not sink.conditions:
        return "ok"
    return "; ".join(f"{c.state.replace('_', ' ')}: {c.advice(first_line=True)}" for c in sink.conditions)


def _dashboard(settings: Settings, base: str) -> str:
    dashboard = settings.dashboard
    if not dashboard.enabled:
        return "off (dashboard.enabled is false)"
    if dashboard.password is None:
        return "off: no password; set dashboard.password (e.g. `password: ${CONNECTOR_DASHBOARD_PASSWORD}`)"
    where = "remote addresses allowed" if dashboard.allow_remote else "loopback only"
    return f"{base}{dashboard.path}/  (HTTP Basic; {where})"


def _retention(settings: Settings) -> str:
    """Whether anything purges stored personal data, and what (docs/operations.md, Retention)."""
    days = settings.store.retention_days
    if days is None:
        return (
            f"off: every call's phone number, name and transcript is kept until purged (set store.retention_days, "
            f"or run `{command('purge', '--older-than-days', 'N')}`)"
        )
    if not settings.enabled_sinks():
        return f"{days} days, but no worker runs here (no sink): run `{command('purge')}` from cron"
    return f"{days} days (the workers purge older settled calls hourly)"


def _worker_mode(settings: Settings) -> str:
    if not settings.enabled_sinks():
        return "none needed (no sink configured)"
    if settings.worker.embedded:
        return "embedded (a process of its own, restarted if it dies)"
    return f"external (worker.embedded is false): run `{command('worker')}`"
