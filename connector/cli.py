"""The `connector` command: thin click commands, each calling one library function.

JSON goes to stdout, messages to stderr; a ConnectorError becomes "Error: …" and exit 1 in one place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from connector.config import Settings, load_settings, store_only
from connector.errors import ConnectorError, StoreError
from connector.ledger import Ledger
from connector.ops import sandbox as sandbox_mode


class _ConnectorGroup(click.Group):
    """Turns every ConnectorError into a clean click error (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            raise click.ClickException(str(exc)) from exc


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CONNECTOR_CONFIG",
    help="Config YAML (or $CONNECTOR_CONFIG).",
)


def _reading_ledger(settings: Settings) -> Ledger:
    """The ledger for a command that only reads it (status, quarantine list/show): never creates an empty SQLite
    file, and says what is wrong with a store that is missing or not set up instead of failing on its first
    query ("store unavailable while trying to all")."""
    from connector.ledger.engine import absent_sqlite_file
    from connector.ops.startup import store_display

    if absent_sqlite_file(settings.store):
        raise click.ClickException(
            f"no store at {store_display(settings.store.url)}: nothing was received there yet "
            "(`connector serve` creates it), or `store.url` points elsewhere"
        )
    ledger = Ledger.open(settings.store, migrate_schema=False)
    try:
        ledger.ping()  # reachable, and its schema current: else the reason and the command that fixes it
    except StoreError:
        ledger.dispose()
        raise
    return ledger


def _settings(config_path: Path | None, *, ledger_only: bool = False) -> Settings:
    """The config; `ledger_only` for commands that only read the ledger: they need no CRM or webhook secret."""
    if config_path is None:
        raise click.UsageError("give --config FILE or set CONNECTOR_CONFIG")
    return load_settings(config_path, needed=store_only) if ledger_only else load_settings(config_path)


def _configured_sink(settings: Settings, name: str) -> str:
    """A `--sink` value that names a configured sink: a delivery for any other name would wait forever (no
    worker delivers it) and show in status and /metrics as "not configured"."""
    if name not in settings.sinks:
        raise click.UsageError(f"no sink named {name!r}; configured: {', '.join(sorted(settings.sinks)) or 'none'}")
    return name


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group(cls=_ConnectorGroup)
@click.version_option(package_name="twox-crm-connector")
def main() -> None:
    """Receives 2X post-call webhooks and lands each call's outcome on the CRM contact."""


@main.command()
@config_option
@click.option("--sandbox", is_flag=True, help="No credentials needed: SQLite here, a generated token.")
@click.option("--host", default=None, help="Override receiver.host.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Override receiver.port.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Override serve.workers (1-64).")
def serve(config_path: Path | None, sandbox: bool, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the webhook receiver on gunicorn."""
    from connector.serving import serve as run_server

    emulators = None
    extra: list[str] = []
    if sandbox:
        emulators = sandbox_mode.Emulators.start()
        settings = sandbox_mode.sandbox_settings(Path.cwd(), emulators)
        sandbox_mode.forget_emulated_contacts(settings)
        extra = sandbox_mode.banner(settings, Path(sandbox_mode.SANDBOX_CONFIG), emulators, host=host, port=port)
    else:
        settings = _settings(config_path)
    try:
        run_server(settings, host=host, port=port, workers=workers, extra_lines=extra)
    finally:
        if emulators is not None:
            emulators.stop()


@main.command()
@config_option
@click.option("--offline", is_flag=True, help="Do not check the mappings against the CRMs' schemas.")
def validate(config_path: Path | None, offline: bool) -> None:
    """Check the config, every sink's mapping and (when reachable) the CRM schema; exit 0 when usable,
    1 with every problem listed.

    Warnings (outcomes without a bundle, templates reading unknown fields, a CRM not reachable) do
    not fail validation.
    """
    from connector.errors import ConfigError
    from connector.mapping.lint import lint
    from connector.mapping.sinks import load_sink_mappings
    from connector.ops.crm_checks import credential_findings, schema_findings
    from connector.ops.startup import plaintext_sink_urls, store_exposure
    from connector.serving import config_problems

    settings = _settings(config_path)
    problems = config_problems(settings, sorted(settings.sinks))  # what serve refuses, and disabled sinks too
    if problems:
        raise ConfigError(settings.source, problems)
    mappings = load_sink_mappings(settings, sorted(settings.sinks))
    exposure = store_exposure(settings.store)
    if exposure:
        click.echo(f"warning: store: {exposure}", err=True)
    for warning in plaintext_sink_urls(settings):
        click.echo(f"warning: {warning}", err=True)
    errors = 0
    for name, sink in sorted(settings.sinks.items()):
        for level, message in credential_findings(name, sink):
            click.echo(f"{level}: {message}", err=True)
            errors += level == "error"
    for name, mapping in mappings.items():
        for warning in lint(mapping):
            click.echo(f"warning: sinks.{name}: {warning}", err=True)
        if offline or not settings.sinks[name].enabled:
            continue
        findings = schema_findings(name, settings.sinks[name], mapping)
        for finding in findings:
            click.echo(f"sinks.{name}: {finding.render()}", err=True)
            errors += finding.level == "error"
        if not any(f.level == "error" for f in findings):
            _forget_missing_fields(settings, name)
    if errors:
        raise click.ClickException(f"{errors} problem(s) in the sinks, their mappings or the CRMs (listed above)")
    click.echo(
        f"OK: receiver on {settings.receiver.host}:{settings.receiver.port}{settings.receiver.path}, "
        f"{len(settings.receiver.auth.tokens)} token(s), sinks: {', '.join(settings.enabled_sinks()) or 'none'}"
    )


def _forget_missing_fields(settings: Settings, sink: str) -> None:
    """The CRM has every field the mapping writes now: clear the sink's "CRM lacks fields" warning."""
    from connector.missing_fields import forget_after_check

    if forget_after_check(settings, sink):
        click.echo(f"sinks.{sink}: cleared the missing-fields warning (the CRM has every mapped field)", err=True)


@main.command("crm-setup")
@config_option
@click.option(
    "--sink",
    "sink_names",
    multiple=True,
    help="Sink from the config (repeatable; default: every enabled hubspot and salesforce sink).",
)
@click.option("--question", "questions", multiple=True, help="Also prepare twox_q_<name> for this question name.")
@click.option("--no-ledger-questions", is_flag=True, help="Do not read question names from the stored events.")
@click.option("--dry-run", is_flag=True, help="Print what would be created; change nothing in the CRM.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Salesforce: also write a deployable Metadata API package of the missing fields here.",
)
def crm_setup(
    config_path: Path | None,
    sink_names: tuple[str, ...],
    questions: tuple[str, ...],
    no_ledger_questions: bool,
    dry_run: bool,
    out: Path | None,
) -> None:
    """Create the custom CRM properties (HubSpot) or fields with their field-level security (Salesforce)
    the mappings need; safe to re-run. Exit 1 with manual steps for what the credentials may not do."""
    from connector.mapping.sinks import load_sink_mappings
    from connector.ops.crm_checks import run_setup, setup_types
    from connector.ops.crm_setup import stored_question_names

    settings = _settings(config_path)
    supported = setup_types()
    names = list(sink_names) or [n for n in settings.enabled_sinks() if settings.sinks[n].type in supported]
    if not names:
        raise click.UsageError(f"no {' or '.join(supported)} sink in the config; name one with --sink")
    for name in names:
        if settings.sinks[_configured_sink(settings, name)].type not in supported:
            raise click.ClickException(f"sinks.{name}: crm-setup supports {', '.join(supported)} sinks")
    mappings = load_sink_mappings(settings, names)
    seen: list[str] = []
    if not no_ledger_questions:
        try:
            seen = stored_question_names(settings.store)
        except StoreError as exc:
            click.echo(f"warning: {exc}; preparing only the mapped fields and --question names", err=True)
    reports = []
    for name in names:
        report = run_setup(
            name, settings.sinks[name], mappings[name], sorted({*questions, *seen}), dry_run=dry_run, out=out
        )
        click.echo(report.render(), err=True)  # every SetupReport says what it did
        for problem in report.problems:
            click.echo(f"sinks.{name}: {problem.render()}", err=True)
        reports.append(report.to_dict())
        if reports[-1]["ok"] and not dry_run:
            _forget_missing_fields(settings, name)
    _echo_json(reports[0] if len(reports) == 1 else reports)
    if not all(r["ok"] for r in reports):
        raise click.exceptions.Exit(1)


@main.command()
@config_option
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--sink",
    "sink_names",
    multiple=True,
    help="Sink name from the config, or hubspot/salesforce "
    "for the default mapping (repeatable; default: every enabled sink).",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Preview this mapping file instead (with --sink naming it).",
)
@click.option("--format", "output", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option(
    "--call-time",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="When the call happened (default: now, UTC).",
)
def preview(
    config_path: Path | None,
    payload: Path,
    sink_names: tuple[str, ...],
    mapping_file: Path | None,
    output: str,
    call_time: Any,
) -> None:
    """Print the CRM operations PAYLOAD would cause, sending nothing (one plan, or a list for several sinks)."""
    from connector.errors import ConfigError
    from connector.ops.preview import preview_plans, render_text

    settings = load_settings(config_path) if config_path else None
    try:
        plans = preview_plans(
            payload.read_bytes(),
            settings=settings,
            sinks=list(sink_names),
            mapping_file=mapping_file,
            call_time=call_time,
        )
    except ConfigError as exc:
        if exc.source != "--sink":
            raise
        said = "; ".join(f"{problem.path}: {problem.message}" for problem in exc.problems)
        raise click.BadParameter(said, param_hint="--sink") from None
    if output == "text":
        click.echo("\n\n".join(render_text(plan) for plan in plans))
    else:
        dumped = [plan.model_dump(mode="json") for plan in plans]
        _echo_json(dumped[0] if len(dumped) == 1 else dumped)


@main.command()
@config_option
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Override worker.metrics_port (several workers on one host need one port each; 0: any free port).",
)
def worker(config_path: Path | None, metrics_port: int | None) -> None:
    """Run a delivery worker (several may run at once against PostgreSQL); stops cleanly on SIGTERM."""
    from connector.engine.worker import run_worker

    settings = _settings(config_path)
    if metrics_port is not None:
        worker_settings = settings.worker.model_copy(update={"metrics_port": metrics_port})
        settings = settings.model_copy(update={"worker": worker_settings})
    run_worker(settings, announce=lambda line: click.echo(f"connector worker: {line}", err=True))


@main.command()
@config_option
@click.option("--event", "event_id", default=None, help="Re-plan and re-deliver one event (all its sinks).")
@click.option("--dead-letter", "dead_letter", is_flag=True, help="Re-deliver every dead-lettered delivery.")
@click.option("--quarantine", "from_quarantine", is_flag=True, help="Run every quarantined body through ingestion.")
@click.option("--sink", default=None, help="Only this configured sink (with --event or --dead-letter).")
def replay(
    config_path: Path | None, event_id: str | None, dead_letter: bool, from_quarantine: bool, sink: str | None
) -> None:
    """Re-plan with the current mapping and re-deliver; actions that already succeeded are never repeated.

    Exit status: 0 when done (also when there was nothing to replay); 1 for a config or store problem, an
    unknown event, or with --quarantine when a body is still refused (it stays quarantined; the JSON says
    why), as `quarantine replay`; 2 for a usage error, such as a --sink that is not configured.
    """
    from connector.ops.replay import replay_dead_letters, replay_event, replay_quarantine

    if sum([event_id is not None, dead_letter, from_quarantine]) != 1:
        raise click.UsageError("give exactly one of --event ID, --dead-letter, --quarantine")
    if from_quarantine and sink is not None:
        # An accepted body becomes an event for every enabled sink, as when it first arrived.
        raise click.UsageError("--sink goes with --event or --dead-letter, not --quarantine")
    settings = _settings(config_path)
    if sink is not None:
        _configured_sink(settings, sink)
    ledger = Ledger.open(settings.store)
    if event_id is not None:
        result = replay_event(ledger, settings, event_id, sink=sink)
    elif dead_letter:
        result = replay_dead_letters(ledger, sink=sink)
    else:
        result = replay_quarantine(ledger, settings)
    _echo_json(result)
    if not result.get("requeued") and not result.get("replayed"):
        click.echo("nothing to replay", err=True)
    if from_quarantine:
        _fail_if_still_refused(result["results"])


def _fail_if_still_refused(results: list[dict[str, Any]]) -> None:
    """Exit 1 when a quarantined body is still refused (or not found): a script must see that something is left."""
    if any(r["status"] >= 400 for r in results):
        raise click.exceptions.Exit(1)


@main.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Bring the store's schema to the newest revision (serve and worker also do this at start), and say what
    was done: created, upgraded from which revision, or already current."""
    ledger = Ledger.open(_settings(config_path).store, migrate_schema=False)
    try:
        before, after = ledger.migrate()
    finally:
        ledger.dispose()
    if before is None:
        click.echo(f"created the store schema (revision {after})", err=True)
    elif before != after:
        click.echo(f"upgraded the store schema {before} -> {after}", err=True)
    else:
        click.echo(f"the store schema is already up to date (revision {after})", err=True)


@main.command()
@config_option
@click.option(
    "--older-than-days",
    "days",
    type=click.FloatRange(min=0),
    default=None,
    help="Purge what is older than this many days (0: every settled call now). Default: store.retention_days.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
def purge(config_path: Path | None, days: float | None, dry_run: bool) -> None:
    """Purge personal data past retention now (workers also do it hourly when store.retention_days is set): the raw
    body, normalized call, phone, plans and error texts of settled calls, quarantined bodies, cached look-ups and
    remembered answers. Each call's id and hashes stay, so a late retry is still answered as a duplicate; a call with
    a delivery still pending, retrying or held is kept whole. Prints the counts as JSON."""
    from connector.ledger.retention import cutoff

    settings = _settings(config_path, ledger_only=True)
    days = days if days is not None else settings.store.retention_days
    if days is None:
        raise click.UsageError("give --older-than-days N, or set store.retention_days in the config")
    ledger = Ledger.open(settings.store)
    try:
        before = cutoff(days)
        counts = ledger.retention.purge(before, dry_run=dry_run)
    finally:
        ledger.dispose()
    _echo_json({"before": before.isoformat(timespec="seconds"), "dry_run": dry_run, **counts.as_dict()})
    if counts.unsettled_kept:
        click.echo(
            f"{counts.unsettled_kept} older call(s) kept whole: a delivery of theirs is still pending, retrying or "
            "held (see `connector status`)",
            err=True,
        )


@main.command()
@config_option
@click.option("--phone", required=True, help="The person's phone number (E.164, or national in phone.default_region).")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
def forget(config_path: Path | None, phone: str, dry_run: bool) -> None:
    """Erase one person on request (a data-subject erasure), whatever the age of their calls: what `purge` removes
    of each of their settled calls, their cached look-ups, the answers remembered for their CRM records and
    quarantined bodies that hold their number. Yes-flags stay (their do-not-call must outlive the erasure), and so
    do each call's id and hashes. Calls still being delivered are kept whole: run it again once they settle. Their
    CRM records are not touched (erase them in the CRM). Prints the counts as JSON, the number masked."""
    from connector._normalize import phone as normalize_phone
    from connector.logs import mask_phone

    settings = _settings(config_path, ledger_only=True)
    number = normalize_phone(phone, settings.phone.default_region)["e164"]
    if number is None:
        raise click.BadParameter(
            f"not a phone number (read in region {settings.phone.default_region})", param_hint="--phone"
        )
    ledger = Ledger.open(settings.store)
    try:
        counts = ledger.retention.forget_contact(number, dry_run=dry_run)
    finally:
        ledger.dispose()
    report = counts.as_dict()
    report.pop("more_left")
    _echo_json({"phone": mask_phone(number), "dry_run": dry_run, **report})
    if counts.unsettled_kept:
        click.echo(
            f"{counts.unsettled_kept} call(s) of this number kept whole: still being delivered (pending, retrying or "
            "held); run forget again once they settle",
            err=True,
        )


@main.command("after-restore")
@config_option
def after_restore(config_path: Path | None) -> None:
    """Run once after restoring the store from a backup, before serve or workers start: every call log and task of
    a delivery the backup does not show as succeeded is looked up in the CRM by its key before it is written, so
    what reached the CRM after the backup was taken is not written twice."""
    from connector.ops.restore import mark_after_restore

    settings = _settings(config_path)
    ledger = Ledger.open(settings.store)
    try:
        report = mark_after_restore(ledger, settings)
    finally:
        ledger.dispose()
    click.echo(report.render(), err=True)


@main.command()
@config_option
@click.argument("event_id", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="The full report as JSON (for one event: the whole audit "
    "trail: stored body, normalized event, plan, every attempt).",
)
def status(config_path: Path | None, event_id: str | None, as_json: bool) -> None:
    """Without EVENT_ID: each sink's state (ok, paused, rate-limited), backlog and dead letters, and the live
    workers. With it: where that call went in each CRM, the records it touched, the last error in plain
    words and the next retry. `--json` gives everything."""
    from connector.dashboard.audit import event_detail
    from connector.ops.reports import event_status, health_report
    from connector.ops.status_text import event_text, health_text

    settings = _settings(config_path, ledger_only=True)
    ledger = _reading_ledger(settings)
    if event_id is None:
        report = health_report(ledger, settings)
        _echo_json(report) if as_json else click.echo(health_text(report))
        return
    if as_json:
        found = event_status(ledger, event_id)
    else:
        found = event_detail(ledger, settings, event_id)
    if found is None:
        raise click.ClickException(
            f"no event with id {event_id!r} (see `connector quarantine list --config "
            f"{config_path or 'FILE'}` for refused bodies)"
        )
    _echo_json(found) if as_json else click.echo(event_text(found))


@main.group()
def quarantine() -> None:
    """Bodies the receiver refused: list, show, replay."""


@quarantine.command("list")
@config_option
@click.option("--all", "include_replayed", is_flag=True, help="Include bodies already replayed.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest N bodies.")
def quarantine_list(config_path: Path | None, include_replayed: bool, limit: int) -> None:
    """List quarantined bodies, newest first (JSON)."""
    ledger = _reading_ledger(_settings(config_path, ledger_only=True))
    rows = ledger.list_quarantine(limit=limit, include_replayed=include_replayed)
    _echo_json([{**row, "errors": json.loads(row["errors"])} for row in rows])
    if not rows:
        click.echo("quarantine is empty", err=True)


@quarantine.command("show")
@config_option
@click.argument("quarantine_id", type=int)
def quarantine_show(config_path: Path | None, quarantine_id: int) -> None:
    """Show one quarantined body with why it was refused."""
    from connector.ops.reports import quarantined_report

    ledger = _reading_ledger(_settings(config_path, ledger_only=True))
    report = quarantined_report(ledger, quarantine_id)
    if report is None:
        raise click.ClickException(f"no quarantined body with id {quarantine_id}")
    _echo_json(report)


@quarantine.command("replay")
@config_option
@click.argument("quarantine_ids", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every body not yet replayed.")
def quarantine_replay(config_path: Path | None, quarantine_ids: tuple[int, ...], replay_all: bool) -> None:
    """Run quarantined bodies (QUARANTINE_IDS, or --all) through ingestion again (after a fix); each keeps its
    quarantine record.

    Exit status: 0 when every body became an event (or already was one), or --all found none; 1 when any is
    still refused or not found (it stays quarantined; the JSON says why); 2 for a usage error.
    """
    from connector.ops.reports import replay_quarantined

    if not quarantine_ids and not replay_all:
        raise click.UsageError("give the quarantine ids to replay, or --all")
    settings = _settings(config_path)
    ledger = Ledger.open(settings.store)
    ids = list(quarantine_ids)
    if replay_all:
        ids += [row["id"] for row in ledger.list_quarantine(limit=1_000_000)]
    if not ids:
        click.echo("nothing to replay", err=True)
        return
    results = [replay_quarantined(ledger, settings, qid) for qid in ids]
    _echo_json(results)
    _fail_if_still_refused(results)


@main.command("send-sample")
@click.option("--url", required=True, help="The receiver's full webhook URL.")
@click.option("--header", "header_name", default="Authorization", show_default=True, help="Auth header name.")
@click.option("--token", required=True, envvar="TWOX_WEBHOOK_TOKEN", help="Auth header value.")
@click.option("--id", "event_id", default=None, help="Event id (random when omitted).")
@click.option("--end-reason", default="call_transferred", show_default=True, help="call.end_reason to send.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for the answer.")
def send_sample(url: str, header_name: str, token: str, event_id: str | None, end_reason: str, timeout: float) -> None:
    """Post a valid sample post-call webhook, as 2X's "Send Sample Postcall Webhook" does."""
    import requests

    from connector.sample import sample_payload

    payload = sample_payload(event_id, end_reason=end_reason)
    try:
        response = requests.post(url, json=payload, headers={header_name: token}, timeout=timeout)
    except requests.RequestException as exc:
        raise click.ClickException(f"could not reach {url}: {exc.__class__.__name__}") from exc
    click.echo(f"HTTP {response.status_code} {response.text.strip()}")
    if not response.ok:
        sys.exit(1)
