"""A loopback HubSpot CRM API emulator that the real ``hubspot-api-client`` (v12) can talk to.

It serves the v3/v4 paths the SDK calls for contacts, calls and tasks (objects, batch, search), properties and
property groups, and v4 associations, with HubSpot's statuses, JSON shapes, validation errors, rate limits and
search indexing lag, so tests and ``connector serve --sandbox`` exercise the same code paths as production::

    with HubSpotEmulator() as emulator:
        client = hubspot.Client.create(access_token="sandbox-hubspot-token", host=emulator.url)
        client.crm.contacts.basic_api.get_by_id("1001")

Standalone: ``python -m connector.emulators.hubspot.server --port 8701 [--token T] [--rate-limit N] [--search-lag S]``.
The modules of this package hold the pieces; each cites the HubSpot documentation it follows.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connector.emulators.hubspot.app import FailRule, HubSpotApp, RequestRecord
from connector.emulators.hubspot.schema import (
    OBJECT_TYPES,
    SEED_CONTACTS,
    custom_properties,
    group,
    resolve_type,
    standard_groups,
    standard_properties,
)
from connector.emulators.hubspot.store import Store

__all__ = ["HubSpotEmulator", "RequestRecord", "main"]
DEFAULT_TOKEN = "sandbox-hubspot-token"
SEED_CREATED = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)  # the sample contacts were created a while ago


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (tests make hundreds); errors still reach the emulator's logger."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class HubSpotEmulator:
    """HubSpot's CRM API on ``http://127.0.0.1:PORT``, in a daemon thread, with knobs and inspection for tests."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        rate_limit: int | None = 190,
        rate_window_s: float = 10.0,
        search_rate_per_s: int | None = 5,
        search_lag_s: float = 0.0,
        seed_contacts: bool = True,
        seed_custom_properties: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self.url = ""
        self._store = Store()
        for name in OBJECT_TYPES:
            self._store.properties[name] = {p["name"]: p for p in standard_properties(name)}
            self._store.groups[name] = {g["name"]: g for g in standard_groups(name)}
        if seed_custom_properties:
            for name, definitions in custom_properties().items():
                self._store.groups[name].setdefault("twox", group("twox", "2X", 10))
                self._store.properties[name].update({p["name"]: p for p in definitions})
        if seed_contacts:
            for day, properties in enumerate(SEED_CONTACTS):
                self._store.seed(OBJECT_TYPES["contacts"], properties, SEED_CREATED + timedelta(days=day))
        self._app = HubSpotApp(
            self._store,
            tokens=tokens,
            rate_limit=rate_limit,
            rate_window_s=rate_window_s,
            search_rate_per_s=search_rate_per_s,
            search_lag_s=search_lag_s,
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind (port 0 picks a free one), serve in a daemon thread, and return the base URL."""
        if self._server is not None:
            return self.url
        self._server = make_server(self.host, self.port, self._app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hubspot-emulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HubSpotEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- knobs ----------------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 503, retry_after: float | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next ``n`` authorized requests (whose path contains ``path_contains``, if given) with
        ``status`` and a HubSpot-shaped body; ``retry_after`` adds a ``Retry-After`` header. Rules queue up."""
        with self._store.lock:
            self._app.failures.append(FailRule(n, status, retry_after, path_contains))

    def set_daily_usage(self, used: int, limit: int | None = None) -> None:
        """Set today's count of requests (and the daily limit): at the limit every request is answered with the
        DAILY 429 until this is called again (the emulated day never ends by itself)."""
        with self._store.lock:
            self._app.daily_used = used
            if limit is not None:
                self._app.daily_limit = limit

    def set_tokens(self, tokens: Iterable[str]) -> None:
        """Replace the accepted bearer tokens (revoke or rotate)."""
        with self._store.lock:
            self._app.tokens = set(tokens)

    def set_search_lag(self, seconds: float) -> None:
        """Search sees a write only ``seconds`` after it happened (reads by id see it at once)."""
        with self._store.lock:
            self._app.search_lag_s = seconds

    def seed_records(self, object_type: str, records: Iterable[dict[str, str]]) -> list[str]:
        """Add records the search index has always known (a portal's existing contacts); returns their ids."""
        otype = self._type(object_type)
        with self._store.lock:
            return [self._store.seed(otype, dict(properties), SEED_CREATED).id for properties in records]

    # -- inspection -----------------------------------------------------------------------------

    def objects(self, object_type: str, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """Every record of a type, oldest first: ``{"id", "properties", "createdAt", "updatedAt", "archived",
        "associations": {"contacts": ["1001"]}}``."""
        otype = self._type(object_type)
        with self._store.lock:
            records = sorted(self._store.records[otype.name].values(), key=lambda r: int(r.id))
            return [self._store.snapshot(r) for r in records if include_archived or not r.archived]

    def get(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        """One record (archived ones too, with ``"archived": True``), or None."""
        otype = self._type(object_type)
        with self._store.lock:
            record = self._store.records[otype.name].get(str(object_id))
            return None if record is None else self._store.snapshot(record)

    def associations(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        """Ids of the live ``to_type`` records associated with one record."""
        source, target = self._type(from_type), self._type(to_type)
        with self._store.lock:
            return list(self._store.targets(source.name, str(from_id), target.name))

    def properties(self, object_type: str) -> dict[str, dict[str, Any]]:
        """Property definitions by name (including ones created through the API)."""
        otype = self._type(object_type)
        with self._store.lock:
            return {name: dict(p) for name, p in self._store.properties[otype.name].items() if not p["archived"]}

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request answered so far (a copy)."""
        with self._store.lock:
            return list(self._app.log)

    def request_count(self, *, path_prefix: str | None = None, method: str | None = None) -> int:
        with self._store.lock:
            return sum(
                1
                for r in self._app.log
                if (path_prefix is None or r.path.startswith(path_prefix))
                and (method is None or r.method.upper() == method.upper())
            )

    def reset_counters(self) -> None:
        """Forget the request log and the rate-limit windows (records stay)."""
        with self._store.lock:
            self._app.log.clear()
            self._app.burst.events.clear()
            self._app.search_window.events.clear()
            self._app.daily_used = 0

    @staticmethod
    def _type(object_type: str) -> Any:
        otype = resolve_type(object_type)
        if otype is None:
            raise ValueError(f"unknown object type {object_type!r}; use contacts, calls or tasks")
        return otype


def main(argv: list[str] | None = None) -> None:
    """Serve the emulator standalone until interrupted, printing its URL and token."""
    parser = argparse.ArgumentParser(
        prog="python -m connector.emulators.hubspot.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--token", action="append", help=f"accepted bearer token (repeatable; default {DEFAULT_TOKEN})")
    parser.add_argument("--rate-limit", type=int, default=190, help="requests per 10 s window; 0 disables")
    parser.add_argument("--search-rate", type=int, default=5, help="searches per second; 0 disables")
    parser.add_argument("--search-lag", type=float, default=0.0, help="seconds before a write is searchable")
    parser.add_argument("--no-seed", action="store_true", help="start without the sample contacts")
    parser.add_argument("--custom-properties", action="store_true", help="pre-create the connector's properties")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = HubSpotEmulator(
        tokens=args.token or [DEFAULT_TOKEN],
        rate_limit=args.rate_limit or None,
        search_rate_per_s=args.search_rate or None,
        search_lag_s=args.search_lag,
        seed_contacts=not args.no_seed,
        seed_custom_properties=args.custom_properties,
        host=args.host,
        port=args.port,
    )
    url = emulator.start()
    print(f"HubSpot emulator listening on {url}", flush=True)
    print(f"  token: {', '.join(sorted(emulator._app.tokens))}", flush=True)
    print(f"  try:   hubspot.Client.create(access_token=TOKEN, host={url!r})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
