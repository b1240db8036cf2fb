"""Where a webhook's CPU goes: the connector's receiver and the bare endpoint, called in-process.

Both WSGI apps get the same requests, built the way gunicorn hands them over (a WSGI environ with
the body in `wsgi.input`), with their real SQLite stores (WAL, synchronous as chosen). The
connector runs with the config `bench/ingest.py` serves and its logging on (to /dev/null, so
formatting is still paid). Prints the CPU time per request of each (time.process_time, no
profiler; the median of alternating rounds), then a cProfile of the connector's requests,
by own time and by cumulative time.

On a 2-core host the closed-loop throughput of bench/ingest.py is bound by CPU, so this per-request
CPU (less disturbed by other processes than req/s) predicts the ratio between the two servers.

    python bench/ingest_profile.py [--requests 3000] [--synchronous FULL|NORMAL] [--top 30] [--no-profile]
                                   [--postgresql [--pg-admin URL]] [--steps] [--turns N]

With `--steps` it also prints what two steps cost in situ, each measured as the difference to the path as is
when that step alone is left out (rounds alternate): the "event accepted" log line, and the parsing of the
lead's phone number (replaced by its precomputed result). Outside the request path both are cheaper
(about 11 and 18 µs under `timeit`): in situ they also pay for the caches the rest of the request evicts.

With `--postgresql` both apps write to a fresh database each on the local PostgreSQL instead (dropped
afterwards); the CPU measured is still only the receiver's, not the database server's.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import _load
import bare_app  # bench/ is sys.path[0] when run as `python bench/ingest_profile.py`
from _stores import DEFAULT_PG_ADMIN, Store, StoreKind, pg_reachable

from connector import _normalize
from connector.app import create_app
from connector.config import parse_settings
from connector.ledger import Ledger
from connector.logs import setup_logging
from connector.receiver import ingest
from connector.sample import sample_payload

TOKEN = "profile-token"
PATH = "/webhooks/2x/post-call"
WARMUP = 200
ROUNDS = 10

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(body: bytes) -> dict[str, Any]:
    """A POST as gunicorn's sync worker passes it to the app."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_AUTHORIZATION": TOKEN,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_CONNECTION": "close",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def post(app: WsgiApp, body: bytes) -> str:
    status: list[str] = []
    chunks = app(environ(body), lambda s, headers, exc_info=None: status.append(s))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return status[0]


TURNS: int | None = None
"""Transcript turns per body (`--turns`, set once by main); None keeps the sample's 4."""


def bodies(prefix: str, count: int) -> list[bytes]:
    return [json.dumps(_load.document(f"{prefix}-{i}", TURNS), separators=(",", ":")).encode() for i in range(count)]


def warm_up(app: WsgiApp, prefix: str) -> None:
    for body in bodies(f"{prefix}-warm", WARMUP):
        assert post(app, body).startswith("202"), "warm-up request not accepted"


def run_posts(app: WsgiApp, todo: list[bytes], profiler: cProfile.Profile | None = None) -> float:
    """CPU seconds spent answering `todo` (every one must be answered 202)."""
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for body in todo:
        status = post(app, body)
        if not status.startswith("202"):
            raise SystemExit(f"unexpected status {status}")
    if profiler is not None:
        profiler.disable()
    return time.process_time() - started


def cpu_per_request(apps: dict[str, WsgiApp], count: int, rounds: int = ROUNDS) -> dict[str, float]:
    """CPU seconds per request of each app: the median over alternating rounds, so that other processes'
    load (which slows caches and memory, not only the clock) falls on both alike and a burst of it
    does not decide the figure."""
    for name, app in apps.items():
        warm_up(app, name)
    spent: dict[str, list[float]] = {name: [] for name in apps}
    per_round = max(1, count // rounds)
    for index in range(rounds):
        for name, app in apps.items():
            spent[name].append(run_posts(app, bodies(f"{name}-r{index}", per_round)) / per_round)
    return {name: statistics.median(rounds_spent) for name, rounds_spent in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="only the CPU per request, no cProfile")
    parser.add_argument("--postgresql", action="store_true", help="both apps on the local PostgreSQL, not SQLite")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="a PostgreSQL URL allowed to create databases")
    parser.add_argument("--steps", action="store_true", help="also what the log line and phone parsing cost in situ")
    parser.add_argument("--turns", type=int, default=None, help="transcript turns per body (default: the sample's 4)")
    args = parser.parse_args()
    global TURNS
    TURNS = args.turns
    if args.postgresql and (problem := pg_reachable(args.pg_admin)) is not None:
        raise SystemExit(f"PostgreSQL not reachable at {args.pg_admin}: {problem}")
    with tempfile.TemporaryDirectory(prefix="ingest-profile-") as tmp, open(os.devnull, "w") as devnull:
        stores = (
            [Store(StoreKind("postgresql", args.pg_admin), Path(tmp), name) for name in ("connector", "bare")]
            if args.postgresql
            else []
        )
        try:
            figures, steps, profiler = _measure(args, Path(tmp), stores, devnull)
        finally:
            for store in stores:
                store.drop()
    where = "PostgreSQL" if args.postgresql else f"SQLite synchronous={args.synchronous}"
    where += f", {TURNS} transcript turns" if TURNS is not None else ""
    print(
        f"CPU per request, in-process, {args.requests} posts each (after {WARMUP} warm-up; median of {ROUNDS} "
        f"alternating rounds), {where}: connector {figures['connector'] * 1e6:.0f} µs, bare "
        f"{figures['bare'] * 1e6:.0f} µs (ratio {figures['connector'] / figures['bare']:.2f})"
    )
    if steps:
        base = steps.pop(AS_IS)
        print(
            f"connector in situ (median of {2 * ROUNDS} alternating rounds): as is {base * 1e6:.0f} µs; "
            + "; ".join(
                f"{name} {spent * 1e6:.0f} µs (the step: {(base - spent) * 1e6:.0f} µs)"
                for name, spent in steps.items()
            )
        )
    if profiler is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())
    return 0


AS_IS = "as is"


def step_costs(app: WsgiApp, count: int, rounds: int = 2 * ROUNDS) -> dict[str, float]:
    """CPU seconds per request of the connector as is and with one step left out at a time, in alternating rounds."""
    phone = sample_payload("x")["record_phone_number"]
    parsed = _normalize.phone(phone, "US")
    variants: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        AS_IS: nullcontext,
        "without the log line": lambda: mock.patch.object(logging.getLogger(ingest.__name__), "disabled", True),
        "without phone parsing": lambda: mock.patch.object(_normalize, "phone", lambda _raw, _region: dict(parsed)),
    }
    spent: dict[str, list[float]] = {name: [] for name in variants}
    per_round = max(1, count // rounds)
    for index in range(rounds):
        for name, variant in variants.items():
            with variant():
                spent[name].append(
                    run_posts(app, bodies(f"step-{index}-{len(spent[name])}-{name}", per_round)) / per_round
                )
    return {name: statistics.median(values) for name, values in spent.items()}


def _measure(
    args: argparse.Namespace, tmp: Path, stores: list[Store], devnull: Any
) -> tuple[dict[str, float], dict[str, float], cProfile.Profile | None]:
    """Build both apps on their stores, measure them, then profile the connector's requests unless told not to."""
    if stores:
        store_section: dict[str, Any] = {"url": stores[0].connector_url}
        bare_env = {bare_app.PG_ENV: stores[1].pg_conninfo}
    else:
        store_section = {"url": f"sqlite:///{tmp}/connector.db", "sqlite_synchronous": args.synchronous}
        bare_env = {bare_app.DB_ENV: f"{tmp}/bare.db", bare_app.SYNCHRONOUS_ENV: args.synchronous}
    document = {
        "receiver": {"path": PATH, "auth": {"header": "Authorization", "tokens": [TOKEN]}},
        "store": store_section,
        "sinks": {},
    }
    settings = parse_settings(document, source="<profile>", base_dir=Path(tmp))
    ledger = Ledger.open(settings.store)
    try:
        connector = create_app(settings, ledger=ledger)
        setup_logging(settings.logging)
        for handler in logging.getLogger("connector").handlers:
            handler.setStream(devnull)  # type: ignore[attr-defined]
        os.environ.update({bare_app.TOKEN_ENV: TOKEN, bare_app.PATH_ENV: PATH, **bare_env})
        bare = bare_app.create_app()
        figures = cpu_per_request({"connector": connector, "bare": bare}, args.requests)
        steps = step_costs(connector, args.requests) if args.steps else {}
        profiler = None if args.no_profile else cProfile.Profile()
        if profiler is not None:
            run_posts(connector, bodies("profiled", args.requests), profiler)
    finally:
        ledger.dispose()
    return figures, steps, profiler


if __name__ == "__main__":
    sys.exit(main())
