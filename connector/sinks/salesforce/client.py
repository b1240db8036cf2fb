"""The Salesforce connection: one HTTP session, the login modes, and exactly one re-login on an expired session.

Why the sink logs in itself (with simple-salesforce's own ``SalesforceLogin``: same hosts, same SOAP and OAuth
bodies, same response parsing) and then builds the client in direct session-id mode: a ``Salesforce`` constructed
with login credentials refreshes the session by itself on every 401 INVALID_SESSION_ID — up to 3 times on
``sf.*`` calls and without bound on ``sf.<Object>.*`` calls (``SFType`` drops its retry counter when it recurses), so
a login that keeps yielding a rejected token loops forever, and none of it passes our rate gate or timeouts.
In direct mode simple-salesforce never refreshes: the 401 comes back here, we log in once more and repeat the
request once; a second 401 (or a session-id configuration, which cannot log in) is an AuthError that pauses the sink.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from connector.errors import ConfigError, ConfigProblem
from connector.sinks.base import RateGate
from connector.sinks.salesforce.errors import classify, translated_errors

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

    from connector.sinks.salesforce.settings import SalesforceAuthSettings, SalesforceSinkSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
USAGE_WARNING = 0.9
"""Warn once the org has used this share of its rolling 24-hour API allocation (Sforce-Limit-Info)."""
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class GatedSession(requests.Session):
    """A ``requests.Session`` for every Salesforce request, the login hosts included.

    Each request waits at the shared rate gate, carries (connect, read) timeouts (simple-salesforce passes none, so
    a silent server would hang a worker forever) and reports ``Sforce-Limit-Info``. ``trust_env`` is off because
    requests lets ``REQUESTS_CA_BUNDLE`` replace ``verify`` whenever a call passes none (simple-salesforce never
    does), which silently ignores the configured CA; proxies are still taken from the environment, per request.
    """

    def __init__(self, gate: RateGate, verify: str | bool, on_usage: Callable[[int, int], None]) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = verify
        self.headers["User-Agent"] = "twox-crm-connector"
        self._gate = gate
        self._on_usage = on_usage

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        target = url.decode() if isinstance(url, bytes) else url
        if not kwargs.get("proxies"):
            kwargs["proxies"] = requests.utils.get_environ_proxies(target)
        self._gate.wait()
        verb = method.decode() if isinstance(method, bytes) else method
        response = super().request(verb, target, *args, **kwargs)
        usage = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if usage:
            self._on_usage(int(usage[1]), int(usage[2]))
        return response


LOGIN_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"
JWT_LIFETIME_S = 180
"""simple-salesforce signs for 3 minutes too; Salesforce accepts at most 3 minutes beyond its clock [docs:
https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm]."""
SOAP_LOGIN_GONE = "65.0"
Login = Callable[[requests.Session, str], tuple[str, str]]
"""(HTTP session, API version) → (session id, instance host[:port]), raising simple-salesforce's exceptions."""


def login_flow(auth: SalesforceAuthSettings, name: str) -> Login | None:
    """How to log in with the configured credentials; None for a plain session id (nothing can refresh it).

    SOAP and username-password OAuth logins go through simple-salesforce's ``SalesforceLogin`` (its hosts and
    bodies), given only the arguments of one mode because it picks its flow by which are present. JWT bearer and
    client credentials are sent here, with the token request and answer parsing of simple-salesforce's
    ``token_login``, because ``SalesforceLogin`` derives both the token host and the JWT ``aud`` from ``domain``:
    with a My Domain it would sign ``aud=https://acme.my.salesforce.com``, which Salesforce refuses; the audience
    must be https://login.salesforce.com or https://test.salesforce.com while the token endpoint may be the My
    Domain [docs: https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm;
    simple-salesforce 1.12 login.py builds ``'aud': f'https://{domain}.salesforce.com'``].
    """

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    domain = auth.domain or "login"
    if auth.session_id is not None:
        return None
    if auth.username and auth.password and auth.security_token:
        return _salesforce_login(
            {
                "username": auth.username,
                "password": secret(auth.password),
                "security_token": secret(auth.security_token),
                "domain": domain,
            }
        )
    if auth.username and auth.password and auth.consumer_key and auth.consumer_secret:
        return _salesforce_login(
            {
                "username": auth.username,
                "password": secret(auth.password),
                "consumer_key": auth.consumer_key,
                "consumer_secret": secret(auth.consumer_secret),
                "domain": domain,
            }
        )
    token_url = auth.token_url or f"https://{domain}.salesforce.com/services/oauth2/token"
    if auth.username and auth.consumer_key and auth.private_key_file:
        sandbox = domain == "test" or ".sandbox." in f".{domain}."
        audience = auth.jwt_audience or (SANDBOX_AUDIENCE if sandbox else LOGIN_AUDIENCE)
        return _jwt_bearer(token_url, auth.consumer_key, auth.username, auth.private_key_file, audience, domain)
    if auth.consumer_key and auth.consumer_secret:
        if domain in ("login", "test") and auth.token_url is None:
            raise ConfigError(
                "<config>",
                [
                    ConfigProblem(
                        f"sinks.{name}.auth.domain",
                        "the client-credentials flow needs your My Domain (e.g. acme.my), not login or test",
                    )
                ],
            )
        return _client_credentials(token_url, auth.consumer_key, secret(auth.consumer_secret) or "", domain)
    if auth.username and auth.password:
        return _salesforce_login({"username": auth.username, "password": secret(auth.password), "domain": domain})
    raise ConfigError(
        "<config>",
        [
            ConfigProblem(
                f"sinks.{name}.auth",
                (
                    "give session_id; or username, consumer_key and private_key_file (JWT bearer); or consumer_key, "
                    "consumer_secret and a My Domain (client credentials); or username, password and security_token (SOAP "
                    "login, retired by Salesforce); or username, password, consumer_key and consumer_secret"
                ),
            )
        ],
    )


def _salesforce_login(arguments: dict[str, Any]) -> Login:
    def login(session: requests.Session, version: str) -> tuple[str, str]:
        from simple_salesforce.login import SalesforceLogin

        session_id, instance = SalesforceLogin(session=session, sf_version=version, **arguments)
        return str(session_id), str(instance)

    return login


def _jwt_bearer(token_url: str, consumer_key: str, username: str, key_file: str, audience: str, domain: str) -> Login:
    """OAuth 2.0 JWT bearer: an RS256 assertion with iss, sub, aud and exp, posted as
    ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` (the claims simple-salesforce signs)."""

    def login(session: requests.Session, version: str) -> tuple[str, str]:
        import jwt
        from simple_salesforce.login import token_login

        claims = {"iss": consumer_key, "sub": username, "aud": audience, "exp": f"{time.time() + JWT_LIFETIME_S:.0f}"}
        assertion = jwt.encode(claims, Path(key_file).read_bytes(), algorithm="RS256")
        data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        session_id, instance = token_login(token_url, data, domain, consumer_key, None, None, session)
        return str(session_id), str(instance)

    return login


def _client_credentials(token_url: str, consumer_key: str, consumer_secret: str, domain: str) -> Login:
    """OAuth 2.0 client credentials against the My Domain token endpoint, key and secret in a Basic header
    [docs: https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_client_credentials_flow.htm;
    simple-salesforce's SalesforceLogin sends the same request]."""

    def login(session: requests.Session, version: str) -> tuple[str, str]:
        from simple_salesforce.login import token_login

        basic = base64.b64encode(f"{consumer_key}:{consumer_secret}".encode()).decode()
        session_id, instance = token_login(
            token_url,
            {"grant_type": "client_credentials"},
            domain,
            consumer_key,
            {"Authorization": f"Basic {basic}"},
            None,
            session,
        )
        return str(session_id), str(instance)

    return login


def login_findings(settings: SalesforceSinkSettings, name: str) -> list[tuple[str, str]]:
    """(level, message) about the configured login for `connector validate`.

    The SOAP API ``login()`` (username + password [+ security token]) "is not available in API versions 65.0 and
    later" and retires for 31.0–64.0 in Summer '27 [docs: https://help.salesforce.com/s/articleView?id=005132110]:
    a warning, or an error when ``api_version`` is already 65.0 or later (the login cannot work).
    """
    auth = settings.auth
    soap = (
        auth.session_id is None
        and bool(auth.username and auth.password)
        and not (auth.consumer_key and auth.consumer_secret)
    )
    if not soap:
        return []
    gone = float(settings.api_version) >= float(SOAP_LOGIN_GONE)
    message = (
        f"sinks.{name}.auth: username + password"
        + (" + security_token" if auth.security_token else "")
        + " logs in with the SOAP API login(), which Salesforce does not offer from API version 65.0 and "
        "retires in Summer '27"
        + (f" (api_version is {settings.api_version}: this login fails)" if gone else "")
        + "; use the JWT bearer flow (username, consumer_key, "
        "private_key_file) or client credentials (consumer_key, consumer_secret, domain: your My Domain)"
    )
    return [("error" if gone else "warning", message)]


class SalesforceConnection:
    """Lazily logged-in simple-salesforce client; ``call`` runs one operation with errors translated.

    Nothing touches the network before the first call, so a worker starts (and its other sinks work) while
    Salesforce or its login host is down.
    """

    def __init__(self, name: str, settings: SalesforceSinkSettings) -> None:
        self.settings = settings
        self._login = login_flow(settings.auth, name)
        self._http: GatedSession | None = None
        self._client: Salesforce | None = None
        self._lock = threading.RLock()
        self.api_usage: tuple[int, int] | None = None
        self.logins = 0

    @property
    def can_log_in(self) -> bool:
        """False for a configured session id: nothing can refresh it."""
        return self._login is not None

    def open(self, gate: RateGate) -> None:
        self._http = GatedSession(gate, self.settings.ca_bundle or True, self._usage)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._http, self._client = None, None

    def base_path(self) -> str:
        """``/services/data/vXX.X`` (Composite subrequest URLs are paths under the instance)."""
        return f"/services/data/v{self.settings.api_version}"

    def call(self, operation: Callable[[Salesforce], T], *, where: str) -> T:
        """Run ``operation`` with the client; on 401 log in once more and run it once more, else raise."""
        from simple_salesforce.exceptions import SalesforceExpiredSession

        relogged = False
        while True:
            client = self.client()
            with translated_errors(where):
                try:
                    return operation(client)
                except SalesforceExpiredSession as exc:
                    if not self.can_log_in or relogged:
                        raise classify(401, exc.content, where=where) from exc
            relogged = True
            log.info("Salesforce session expired: logging in again", extra={"where": where})
            self._forget(client)

    def client(self) -> Salesforce:
        """The current client, logging in first when there is none."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def relogin(self) -> None:
        """Drop the current session (used by the auth probe: a paused sink must prove fresh credentials)."""
        with self._lock:
            if self.can_log_in:
                self._client = None

    def _forget(self, stale: Salesforce) -> None:
        with self._lock:
            if self._client is stale:  # another thread may already have logged in again
                self._client = None

    def _connect(self) -> Salesforce:
        from simple_salesforce.api import Salesforce

        assert self._http is not None, "open() first"
        version = self.settings.api_version
        if self._login is None:
            secret = self.settings.auth.session_id
            assert secret is not None
            return Salesforce(
                instance_url=self.settings.instance_url,
                session_id=secret.get_secret_value(),
                session=self._http,
                version=version,
            )
        with translated_errors("login"):
            session_id, instance = self._login(self._http, version)
        self.logins += 1
        # The login answer names the instance the session belongs to (it wins over instance_url).
        return Salesforce(instance=instance, session_id=session_id, session=self._http, version=version)

    def _usage(self, used: int, allowed: int) -> None:
        before = self.api_usage
        self.api_usage = (used, allowed)
        crossed = allowed and used >= USAGE_WARNING * allowed
        if crossed and (before is None or before[0] < USAGE_WARNING * before[1]):
            log.warning("Salesforce API allocation nearly used up", extra={"used": used, "allowed": allowed})
