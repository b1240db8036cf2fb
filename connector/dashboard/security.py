"""Who may see the dashboard and how its forms are protected.

- Loopback only by default: a request from another address, or one that came through a proxy
  (forwarding headers), is refused with 403 unless `allow_remote` is set.
- HTTP Basic against the dashboard's own username and password, compared in constant time; the
  webhook token never grants access.
- CSRF: every POST carries a token, the Basic user name signed and timestamped by itsdangerous with
  a key derived from the dashboard password, so every worker process of a server agrees on it
  without shared state, and a page rendered before a password change stops working.
- Security headers on every dashboard response.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Request, Response
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from connector.loopback import is_loopback

REALM = "connector dashboard"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE_S = 12 * 3600
CSRF_SALT = "connector-dashboard-csrf"
_FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Host")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def remote_refusal(request: Request, allow_remote: bool) -> str | None:
    """Why this request may not see the dashboard from where it comes, or None when it may."""
    if allow_remote:
        return None
    if not is_loopback(request.remote_addr):
        return "the dashboard only answers on loopback; set dashboard.allow_remote: true to serve it further"
    if any(name in request.headers for name in _FORWARDING_HEADERS):
        return (
            "this request came through a proxy; set dashboard.allow_remote: true to serve the dashboard "
            "through one (and protect it there)"
        )
    return None


@dataclass(frozen=True)
class Credentials:
    """The one dashboard account; secrets are kept as bytes for constant-time comparison."""

    username: bytes
    password: bytes

    @classmethod
    def of(cls, username: str, password: str) -> Credentials:
        return cls(username.encode("utf-8"), password.encode("utf-8"))

    def check(self, request: Request) -> str | None:
        """The authenticated user name, or None. Both parts are always compared (no short-circuit)."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        user = (auth.username or "").encode("utf-8", "surrogateescape")
        password = (auth.password or "").encode("utf-8", "surrogateescape")
        user_ok = hmac.compare_digest(user, self.username)
        password_ok = hmac.compare_digest(password, self.password)
        return auth.username if (user_ok and password_ok) else None

    def csrf(self) -> Csrf:
        key = hmac.new(self.password, b"connector-dashboard-csrf-v1|" + self.username, hashlib.sha256).digest()
        return Csrf(key)


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer with an injectable clock, so a test can issue a token in the past."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


@dataclass(frozen=True)
class Csrf:
    """Issues and checks form tokens with itsdangerous: the user name, signed and timestamped.

    The token is bound to the login (its payload is the Basic user name, compared on the way
    back) and to the password (the key is derived from it), and expires after CSRF_MAX_AGE_S.
    """

    key: bytes

    def issue(self, user: str, now: float | None = None) -> str:
        return self._serializer(now).dumps(user)

    def valid(self, user: str, token: str | None, now: float | None = None) -> bool:
        if not token:
            return False
        try:
            signed_for = self._serializer(now).loads(token, max_age=CSRF_MAX_AGE_S)
        except BadData:  # bad signature, expired, from the future, or not a token at all
            return False
        return isinstance(signed_for, str) and hmac.compare_digest(
            signed_for.encode("utf-8", "surrogateescape"), user.encode("utf-8", "surrogateescape")
        )

    def _serializer(self, now: float | None) -> URLSafeTimedSerializer:
        clock: Callable[[], float] = time.time if now is None else (lambda: now)
        return URLSafeTimedSerializer(self.key, salt=CSRF_SALT, signer=_ClockedSigner, signer_kwargs={"clock": clock})


def same_origin(request: Request) -> bool:
    """A POST's Origin, when the browser sends a real one, must name this host. Only the host is
    compared: behind a TLS proxy the app sees http while the browser says https. (`null` is sent
    under Referrer-Policy: no-referrer and proves nothing either way; the CSRF token decides.)"""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def unauthorized() -> Response:
    response = Response("Authentication required for the connector dashboard.\n", 401, mimetype="text/plain")
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


def too_many_attempts(retry_after_s: int) -> Response:
    response = Response("Too many failed logins from this address; try again later.\n", 429, mimetype="text/plain")
    response.headers["Retry-After"] = str(retry_after_s)
    return response


def forbidden(reason: str) -> Response:
    return Response(f"Forbidden: {reason}.\n", 403, mimetype="text/plain")


def bad_request(reason: str) -> Response:
    return Response(f"Bad request: {reason}.\n", 400, mimetype="text/plain")
