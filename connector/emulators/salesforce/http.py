"""The WSGI app: session check, API-usage accounting, injected faults, logging, and never a traceback.

Per request, in Salesforce's order: ``GET /services/data/`` (versions) needs no session and isn't counted;
anything else under ``/services/data/vXX.X/`` needs ``Authorization: Bearer <session id>`` (or ``OAuth``) — else
401 ``INVALID_SESSION_ID`` "Session expired or invalid" (observed; simple-salesforce maps 401 to
SalesforceExpiredSession); then the daily allocation — once ``daily_limit`` calls are used, 403
``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." [docs: errorcodes.htm, "403 … REQUEST_LIMIT_EXCEEDED"];
then the call counts (a composite or collection request counts once [docs: Composite, sObject Collections]) and
every response carries ``Sforce-Limit-Info: api-usage=N/MAX`` [docs: "Limit Info Header"]. Unexpected errors
become 500 ``UNKNOWN_EXCEPTION`` with Salesforce's ErrorId text, logged here with the traceback.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from connector.emulators.salesforce.errors import MSG_LIMIT, MSG_SESSION, SalesforceApiError, not_found
from connector.emulators.salesforce.org import Call, Org, Result
from connector.emulators.salesforce.rest import SUPPORTED_VERSIONS, versions
from connector.emulators.salesforce.routes import dispatch

logger = logging.getLogger("connector.emulators.salesforce.server")
_VERSIONED = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_MAX_LOGGED_BODY = 100_000


class SalesforceWsgiApp:
    """Serves one ``Org``; holds the org lock for the whole request (requests are serialized)."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        raw = request.get_data(as_text=True)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(flat=False),
            "body": _logged_body(raw),
            "counted": False,
            "at": time.time(),
        }
        with self.org.lock:
            try:
                result = self._handle(request, raw, entry)
                self.org.security.refresh()  # a permission set write may have granted or revoked a field
            except SalesforceApiError as exc:
                result = Result(exc.status, exc.body())
            except Exception:  # the client must never see a Python traceback: Salesforce's 500 shape instead
                error_id = f"{random.randint(10**8, 10**9)}-{random.randint(10**4, 10**5)}"
                logger.exception(
                    "Salesforce emulator: unexpected error (ErrorId %s) on %s %s",
                    error_id,
                    request.method,
                    request.full_path,
                )
                result = Result(
                    500,
                    [
                        {
                            "errorCode": "UNKNOWN_EXCEPTION",
                            "message": (
                                "An unexpected error occurred. Please include this ErrorId if you contact support: "
                                f"{error_id} ({-random.randint(10**8, 10**9)})"
                            ),
                        }
                    ],
                )
            entry["status"] = result.status
            if result.status >= 400 and isinstance(result.body, list) and result.body:
                entry["error_code"] = result.body[0].get("errorCode")
            self.org.log.append(entry)
            headers = {**result.headers, "Sforce-Limit-Info": self.org.usage_header()}
        response = Response(status=result.status, headers=headers)
        if result.body is not None and result.status != 204:
            response.set_data(json.dumps(result.body, ensure_ascii=False).encode("utf-8"))
            response.content_type = "application/json;charset=UTF-8"
        return response(environ, start_response)

    def _handle(self, request: Request, raw: str, entry: dict[str, Any]) -> Result:
        org = self.org
        path = request.path
        if path.startswith("/services/oauth2/"):
            return self._oauth(request, path.removeprefix("/services/oauth2/").strip("/"))
        if path in ("/services/data", "/services/data/"):
            if request.method not in ("GET", "HEAD"):
                raise SalesforceApiError(
                    405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are HEAD,GET"
                )
            return Result(200, versions())
        match = _VERSIONED.match(path)
        if not match or match[1] not in SUPPORTED_VERSIONS:
            raise not_found()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or token.strip() not in org.sessions:
            raise SalesforceApiError(401, "INVALID_SESSION_ID", MSG_SESSION)
        if org.used >= org.daily_limit:
            raise SalesforceApiError(403, "REQUEST_LIMIT_EXCEEDED", MSG_LIMIT)
        org.used += 1
        entry["counted"] = True
        target = request.full_path.rstrip("?")
        fault = org.take_fault(target)
        if fault is not None:
            entry["injected"] = True
            raise fault
        call = Call(request.method, match[1], match[2] or "/", request.args, dict(request.headers), raw=raw, log=entry)
        return dispatch(org, call)

    def _oauth(self, request: Request, endpoint: str) -> Result:
        """``token`` (client credentials, JWT bearer: a new session for the app's user) and ``userinfo``.

        Not counted against the API allocation (UNVERIFIED). A rejected bearer token on userinfo is 403 with the text
        "Bad_OAuth_Token" (UNVERIFIED).
        """
        org = self.org
        host = request.host_url.rstrip("/")
        if endpoint == "token":
            if request.method != "POST":
                raise SalesforceApiError(405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed. Allowed are POST")
            status, body, user = org.security.token(request.form.to_dict(), request.headers.get("Authorization", ""))
            if user is None:
                return Result(status, body)
            session = f"00D!emulated-{len(org.sessions) + 1}-{random.randint(10**8, 10**9)}"
            org.sessions.add(session)
            return Result(
                200,
                {
                    "access_token": session,
                    "instance_url": host,
                    "id": (
                        f"https://login.salesforce.com/id/{org.security.userinfo(host)['organization_id']}/"
                        f"{org.security.userinfo(host)['user_id']}"
                    ),
                    "token_type": "Bearer",
                    "scope": "api",
                    "issued_at": str(int(time.time() * 1000)),
                },
            )
        if endpoint == "userinfo":
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() not in ("bearer", "oauth") or token.strip() not in org.sessions:
                return Result(403, "Bad_OAuth_Token")
            if not org.security.userinfo_allowed:  # a token without an identity scope (UNVERIFIED answer)
                return Result(403, {"error": "insufficient_scope", "error_description": "insufficient scope"})
            return Result(200, org.security.userinfo(host))
        raise not_found()


def _logged_body(raw: str) -> Any:
    """The request body for ``request_log``: parsed JSON if it is JSON, else the (truncated) text, else None."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:_MAX_LOGGED_BODY]
