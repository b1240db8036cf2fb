"""A faithful Salesforce REST API emulator over HTTPS on loopback, for sink tests and ``--sandbox`` runs.

simple-salesforce always builds ``https://{instance}/services/data/vXX.X/…`` (the scheme is hard-coded; the host
and a non-443 port are taken from ``instance_url``), so the emulator must speak TLS. At start it creates a
throw-away CA and a certificate for 127.0.0.1/localhost with ``trustme`` and serves with werkzeug (threaded, in a
daemon thread). Clients trust it through the CA file, never by disabling verification::

    with SalesforceEmulator() as emulator:
        session = requests.Session()
        session.verify = emulator.ca_file
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify (or: emulator.client_session())
        sf = Salesforce(instance_url=emulator.instance_url, session_id=emulator.session_id,
                        session=session, version="62.0")
        sf.Contact.create({"LastName": "Doe"})

What is emulated, and how faithfully (sources cited in each module): sObject create/get/update/delete and
describe for Contact, Lead, Task, Account; SOQL (``salesforce.soql``); SOSL and parameterizedSearch with
phone matching that ignores formatting and an index lag knob (``salesforce.sosl``); Composite with references
and allOrNone, sObject Collections (``salesforce.composite``); limits, ``Sforce-Limit-Info``, daily allocation,
expired sessions and injected transient errors (``salesforce.http``, ``salesforce.org``); Salesforce's error
texts and codes (``salesforce.errors``, ``salesforce.validation``); Tooling API custom fields, permission sets
with field-level security, the user's set-up permissions, ``/services/oauth2/userinfo`` and ``token``
(``salesforce.security``).

Run standalone: ``python -m connector.emulators.salesforce.server --port 8702``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connector.emulators.salesforce.http import SalesforceWsgiApp
from connector.emulators.salesforce.org import FaultRule, Org
from connector.emulators.salesforce.schema import FieldDef
from connector.emulators.salesforce.security import USERNAME, OAuthClient
from connector.emulators.salesforce.values import render

__all__ = ["SalesforceEmulator", "main"]

DEFAULT_SESSION_ID = "sandbox-salesforce-session"
logger = logging.getLogger("connector.emulators.salesforce.server")


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the access log line (``request_log`` records requests); TLS noise at debug."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log_error(self, format: str, *args: Any) -> None:
        logger.debug("Salesforce emulator connection: " + format, *args)


class SalesforceEmulator:
    """One emulated org served over HTTPS on loopback; every knob and inspection method is thread-safe."""

    def __init__(
        self,
        *,
        session_ids: Iterable[str] = (DEFAULT_SESSION_ID,),
        daily_limit: int = 100_000,
        seed_records: bool = True,
        with_custom_fields: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        session_list = list(session_ids)
        self._first_session = session_list[0] if session_list else DEFAULT_SESSION_ID
        self._org = Org(
            session_ids=session_list,
            daily_limit=daily_limit,
            seed_records=seed_records,
            with_custom_fields=with_custom_fields,
        )
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None
        self._ca_file: str | None = None
        self._instance_url: str | None = None
        self._deleted_fields: dict[tuple[str, str], Any] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> str:
        """Generate the CA and certificate, start serving; returns ``instance_url``."""
        if self._server is not None:
            return self.instance_url
        import trustme  # only serving needs it: importing this module (e.g. for type hints) works without it

        ca = trustme.CA()
        certificate = ca.issue_cert(*dict.fromkeys(("127.0.0.1", "localhost", self._host)))
        self._tempdir = tempfile.mkdtemp(prefix="sf-emulator-")
        self._ca_file = str(Path(self._tempdir) / "ca.pem")
        ca.cert_pem.write_to_path(self._ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        server = make_server(
            self._host, self._port, SalesforceWsgiApp(self._org), threaded=True, request_handler=_QuietHandler
        )
        # Wrapped here rather than by werkzeug so the handshake happens in each connection's own thread on first
        # read (do_handshake_on_connect=False), not in the accept loop, where one silent client would block all.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = context  # werkzeug then reports wsgi.url_scheme "https" and treats SSL errors as such
        self._server = server
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._instance_url = f"https://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="salesforce-emulator", daemon=True)
        self._thread.start()
        return self._instance_url

    def stop(self) -> None:
        """Stop serving and delete the CA/certificate directory."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def instance_url(self) -> str:
        """``https://127.0.0.1:PORT`` (pass as simple-salesforce's ``instance_url``)."""
        if self._instance_url is None:
            raise RuntimeError("SalesforceEmulator is not started")
        return self._instance_url

    @property
    def ca_file(self) -> str:
        """PEM of the generated CA: ``requests.Session().verify = emulator.ca_file``."""
        if self._ca_file is None:
            raise RuntimeError("SalesforceEmulator is not started")
        return self._ca_file

    def client_session(self) -> requests.Session:
        """A ``requests.Session`` that trusts the emulator's CA.

        ``trust_env`` is off because requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override
        ``session.verify`` whenever the call itself passes no ``verify=`` (psf/requests#3829) — and
        simple-salesforce never does, so on a machine with those variables set ``session.verify = ca_file`` alone
        is silently ignored and every call fails certificate verification.
        """
        session = requests.Session()
        session.verify = self.ca_file
        session.trust_env = False
        return session

    @property
    def session_id(self) -> str:
        """The first session id given (the one to hand to clients by default)."""
        return self._first_session

    @property
    def seed_ids(self) -> dict[str, str]:
        """Ids of the seed records by name (``contact_john``, ``lead_bob``, … — see ``salesforce.seed``)."""
        return dict(self._org.seed_ids)

    # --- knobs ---------------------------------------------------------------------------------------------
    def expire_sessions(self) -> None:
        """Every current session id becomes invalid (401 INVALID_SESSION_ID), as after a logout or timeout."""
        with self._org.lock:
            self._org.sessions.clear()

    def add_session(self, session_id: str) -> None:
        """Accept another session id (e.g. the one a refreshed login would hand out)."""
        with self._org.lock:
            self._org.sessions.add(session_id)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 400,
        error_code: str = "UNABLE_TO_LOCK_ROW",
        message: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next ``n`` API requests (whose path+query contain ``path_contains``, if given) fail with this error.

        The failures are counted API calls. With ``path_contains``, composite subrequests whose URL matches fail
        individually (so allOrNone rollback can be exercised). UNABLE_TO_LOCK_ROW's default message names the
        record in the path, as Salesforce does. Its HTTP status is not documented: 400 is what most client code
        expects, but production logs also show it as a 500, so pass ``status=500`` to test that too.
        """
        with self._org.lock:
            self._org.faults.append(FaultRule(n, status, error_code, message, path_contains))

    def set_user_permissions(self, *, customize_application: bool = True, manage_users: bool = True) -> None:
        """The running user's "Customize Application" (create fields) and "Manage Users" (permission sets, field
        permissions, assignments) permissions; without them those writes fail INSUFFICIENT_ACCESS_OR_READONLY."""
        with self._org.lock:
            wanted = {"CustomizeApplication": customize_application, "ManageUsers": manage_users}
            self._org.security.permissions = {name for name, granted in wanted.items() if granted}

    def refuse_userinfo(self, refused: bool = True) -> None:
        """``/services/oauth2/userinfo`` answers 403, as for a token without an identity scope."""
        with self._org.lock:
            self._org.security.userinfo_allowed = not refused

    def register_oauth_client(
        self,
        consumer_key: str,
        *,
        consumer_secret: str | None = None,
        certificate_pem: bytes | None = None,
        username: str = USERNAME,
        audience: str = "https://login.salesforce.com",
    ) -> None:
        """A connected app for ``/services/oauth2/token``: client credentials with ``consumer_secret`` (running as
        ``username``), JWT bearer with the X.509 ``certificate_pem`` whose key signs the assertion."""
        with self._org.lock:
            self._org.security.oauth_clients[consumer_key] = OAuthClient(
                consumer_key, consumer_secret, certificate_pem, username, audience
            )

    def delete_field(self, sobject: str, field: str) -> None:
        """Delete a field after set-up (schema drift): writes naming it get 400 INVALID_FIELD; ``restore_field``
        creates it again."""
        from connector.emulators.salesforce.drift import delete_field

        self._deleted_fields[(sobject.lower(), field.lower())] = delete_field(self._org, sobject, field)

    def restore_field(self, sobject: str, field: str) -> None:
        """Create a field deleted with ``delete_field`` again (empty, as a newly created field)."""
        from connector.emulators.salesforce.drift import add_field

        add_field(self._org, sobject, self._deleted_fields.pop((sobject.lower(), field.lower())))

    def add_field(self, sobject: str, definition: FieldDef) -> None:
        """Create a custom field now, as an admin in Setup does while the connector runs (empty on every record);
        describe lists it from the next call on."""
        from connector.emulators.salesforce.drift import add_field

        add_field(self._org, sobject, definition)

    def block_duplicates(self, sobject: str, field: str = "Phone") -> None:
        """Activate a duplicate rule that blocks a new ``sobject`` whose ``field`` has an existing record's number
        (last 10 digits compared; emulated matching rule, UNVERIFIED beyond "blocks with DUPLICATES_DETECTED")."""
        with self._org.lock:
            self._org.store.duplicate_rules[sobject.lower()] = field

    def set_search_lag(self, seconds: float) -> None:
        """SOSL index lag: records created less than ``seconds`` ago are not found by search."""
        with self._org.lock:
            self._org.search_lag = float(seconds)

    # --- inspection ----------------------------------------------------------------------------------------
    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Every live record of a type, fields rendered as the REST API renders them, in creation order."""
        with self._org.lock:
            obj = self._org.store.object(sobject)
            if obj is None:
                raise KeyError(f"unknown sObject type {sobject!r}")
            return [{k: render(v) for k, v in r.items()} for r in self._org.store.rows(obj)]

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """One live record by 15- or 18-char id, or None."""
        with self._org.lock:
            obj = self._org.store.object(sobject)
            record = self._org.store.get(obj, record_id) if obj else None
            return {k: render(v) for k, v in record.items()} if record else None

    def custom_fields(self) -> list[str]:
        """``Object.Field__c`` of every custom field the org has (Tooling API CustomField), visible or not."""
        with self._org.lock:
            table = self._org.tooling.object("CustomField")
            assert table is not None
            return [str(r["FullName"]) for r in self._org.tooling.rows(table)]

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """Every request seen: method, path, query, body (parsed), status, error_code, counted, subrequests."""
        with self._org.lock:
            return [dict(entry) for entry in self._org.log]

    def api_calls(self) -> int:
        """API requests counted against the daily allocation (composite = 1; the versions list = 0)."""
        with self._org.lock:
            return self._org.used


def main(argv: list[str] | None = None) -> None:
    """``python -m connector.emulators.salesforce.server [--port 8702]``: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Salesforce REST API emulator (HTTPS on loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--session-id", action="append", dest="session_ids")
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--no-seed", action="store_true", help="start with an empty org")
    parser.add_argument("--no-custom-fields", action="store_true", help="omit the TwoX_*__c custom fields")
    args = parser.parse_args(argv)
    emulator = SalesforceEmulator(
        session_ids=args.session_ids or (DEFAULT_SESSION_ID,),
        daily_limit=args.daily_limit,
        seed_records=not args.no_seed,
        with_custom_fields=not args.no_custom_fields,
        host=args.host,
        port=args.port,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # a clean stop removes the CA directory
    with emulator:
        print(f"instance_url: {emulator.instance_url}")
        print(f"ca_file:      {emulator.ca_file}")
        print(f"session_id:   {emulator.session_id}")
        print(
            "Trust the CA (requests: session.verify = ca_file and session.trust_env = False, or "
            "REQUESTS_CA_BUNDLE=ca_file). Ctrl-C stops.",
            flush=True,
        )
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
