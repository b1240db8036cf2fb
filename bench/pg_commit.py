"""The receiver's commit on PostgreSQL: one statement in autocommit against BEGIN, two INSERTs and COMMIT.

    python bench/pg_commit.py [--url postgresql+psycopg://postgres@127.0.0.1/test] [--blocks 20] [--per-block 200]

Creates a scratch database beside the one in `--url`, writes events with two deliveries each through the ledger's
EventWriter in alternating blocks of the two ways (the writer's `_one_statement` switch), and prints per event the
wall time, this process's CPU and the server backends' CPU (read from /proc: the server must run on this host).
Alternating blocks keep a drifting host from favouring either way.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from _common import database_cpu_s
from sqlalchemy.engine import make_url

from connector.config import StoreSettings
from connector.ledger import Ledger
from connector.ledger.store import _new_delivery, _new_event
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload

SINKS = ("hubspot", "salesforce")


def rows(number: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    document = sample_payload(10_000 + number, record_phone_number=f"+1202555{number % 10_000:04d}")
    event, body, now = parse_webhook(document), json.dumps(document).encode(), datetime.now(UTC)
    event_row = _new_event(event, body, content_hash(document), "application/json", now)
    return event_row, [_new_delivery(event.id, sink, 10, now, event.contact_key) for sink in SINKS]


def _database_cpu_s(database: str) -> float:
    used = database_cpu_s(database)
    if used is None:
        raise SystemExit("the server's backends cannot be read from /proc on this host")
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=200)
    args = parser.parse_args()
    admin = make_url(args.url)
    database = f"bench_pg_commit_{os.getpid()}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    try:
        ledger = Ledger.open(StoreSettings(url=admin.set(database=database).render_as_string(hide_password=False)))
        writer = ledger._events
        prepared = iter([rows(i) for i in range(200 + args.blocks * args.per_block)])
        for _ in range(200):  # warm-up: pool, prepared statements
            writer.write(*next(prepared))
        totals = {True: [0.0, 0.0, 0.0, 0], False: [0.0, 0.0, 0.0, 0]}
        for block in range(args.blocks):
            one_statement = block % 2 == 0
            writer._one_statement = one_statement
            server0, wall0, cpu0 = _database_cpu_s(database), time.perf_counter(), time.process_time()
            for _ in range(args.per_block):
                writer.write(*next(prepared))
            entry = totals[one_statement]
            entry[0] += time.perf_counter() - wall0
            entry[1] += time.process_time() - cpu0
            entry[2] += _database_cpu_s(database) - server0
            entry[3] += args.per_block
        ledger.dispose()
        for one_statement, (wall, client, server, count) in totals.items():
            way = "one statement, autocommit" if one_statement else "BEGIN, 2 INSERTs, COMMIT"
            print(
                f"{way:28s} wall {wall / count * 1e6:5.0f} µs, this process's CPU {client / count * 1e6:4.0f} µs, "
                f"server CPU {server / count * 1e6:4.0f} µs per event ({count} events, {len(SINKS)} deliveries each)"
            )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
