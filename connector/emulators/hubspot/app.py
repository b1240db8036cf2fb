"""The WSGI application: routing, bearer-token auth, injected failures, rate limits and the request log.

Rate limits (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines): private apps get a
rolling 10-second burst limit (100 on Free/Starter, 190 on Professional/Enterprise) shared by every request but
search, which has its own limit of 5 requests per second per account. Responses carry
``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds/-Daily/-Daily-Remaining``; search responses carry
none (search guide). A 429 is not promised a ``Retry-After`` header, so none is sent unless ``fail_next`` asks.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from connector.emulators.hubspot import associations as assoc
from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot import objects
from connector.emulators.hubspot import properties as props
from connector.emulators.hubspot.http import Call
from connector.emulators.hubspot.store import Store

log = logging.getLogger("connector.emulators.hubspot.server")
DAILY_LIMIT = 1_000_000  # Enterprise private app (usage guidelines)
_V3, _V4 = "/crm/v3", "/crm/v4"
_OBJ, _PROP = "/crm/v3/objects/<object_type>", "/crm/v3/properties/<object_type>"
_V4_OBJ = "/crm/v4/objects/<from_type>/<from_id>/associations"


def _rule(path: str, method: str, endpoint: Callable[..., Any]) -> Rule:
    return Rule(path, methods=[method], endpoint=endpoint)


URLS = Map(
    [
        _rule(_OBJ, "GET", objects.page),
        _rule(_OBJ, "POST", objects.create),
        _rule(f"{_OBJ}/search", "POST", objects.do_search),
        _rule(f"{_OBJ}/batch/<operation>", "POST", objects.batch),
        _rule(f"{_OBJ}/<object_id>", "GET", objects.get),
        _rule(f"{_OBJ}/<object_id>", "PATCH", objects.update),
        _rule(f"{_OBJ}/<object_id>", "DELETE", objects.archive),
        _rule(_PROP, "GET", props.list_properties),
        _rule(_PROP, "POST", props.create_property),
        _rule(f"{_PROP}/groups", "GET", props.list_groups),
        _rule(f"{_PROP}/groups", "POST", props.create_group),
        _rule(f"{_PROP}/groups/<group_name>", "GET", props.get_group),
        _rule(f"{_PROP}/batch/<operation>", "POST", props.batch_properties),
        _rule(f"{_PROP}/<name>", "GET", props.get_property),
        _rule(f"{_PROP}/<name>", "DELETE", props.archive_property),
        _rule(f"{_V4_OBJ}/default/<to_type>/<to_id>", "PUT", assoc.create_default),
        _rule(f"{_V4_OBJ}/<to_type>/<to_id>", "PUT", assoc.create_labelled),
        _rule(f"{_V4_OBJ}/<to_type>/<to_id>", "DELETE", assoc.delete_association),
        _rule(f"{_V4_OBJ}/<to_type>", "GET", assoc.list_associations),
        _rule("/crm/v4/associations/<from_type>/<to_type>/batch/<path:operation>", "POST", assoc.batch),
    ],
    strict_slashes=False,
)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator answered it. ``counted``: it used up part of a rate limit (the 10-second
    burst limit, or the search limit for searches)."""

    method: str
    path: str
    status: int
    time: float  # time.monotonic() when it arrived
    counted: bool
    query: str = ""


@dataclass
class FailRule:
    remaining: int
    status: int
    retry_after: float | None
    path_contains: str | None


class Window:
    """A rolling window of at most ``limit`` events per ``seconds``."""

    def __init__(self, limit: int | None, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self.events: collections.deque[float] = collections.deque()

    def used(self, now: float) -> int:
        while self.events and self.events[0] <= now - self.seconds:
            self.events.popleft()
        return len(self.events)

    def take(self, now: float) -> bool:
        if self.limit is None:
            return True
        if self.used(now) >= self.limit:
            return False
        self.events.append(now)
        return True


class HubSpotApp:
    """WSGI callable. Every request runs under ``store.lock``, so requests are atomic and knobs thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        tokens: Iterable[str],
        rate_limit: int | None,
        rate_window_s: float,
        search_rate_per_s: int | None,
        search_lag_s: float,
    ) -> None:
        self.store = store
        self.tokens = set(tokens)
        self.burst = Window(rate_limit, rate_window_s)
        self.search_window = Window(search_rate_per_s, 1.0)
        self.search_lag_s = search_lag_s
        self.daily_used = 0
        self.daily_limit = DAILY_LIMIT
        self.failures: list[FailRule] = []
        self.log: list[RequestRecord] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        arrived = time.monotonic()
        counted = False
        try:
            with self.store.lock:
                status, body, headers, counted = self._handle(request, arrived)
        except err.HubSpotError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except Exception:  # never a traceback to the client
            log.exception("HubSpot emulator failed on %s %s", request.method, request.path)
            failure = err.internal_error()
            status, body, headers = failure.status, failure.body, failure.headers
        with self.store.lock:
            self.log.append(
                RequestRecord(
                    request.method, request.path, status, arrived, counted, request.query_string.decode("latin-1")
                )
            )
        return _render(status, body, headers)(environ, start_response)

    def _handle(self, request: Request, arrived: float) -> tuple[int, Any, dict[str, str], bool]:
        if not self._authorized(request):
            raise err.unauthorized()
        injected = self._injected(request.path)
        if injected is not None:
            raise injected
        adapter = URLS.bind("emulator")
        try:
            endpoint, args = adapter.match(request.path, method=request.method)
        except MethodNotAllowed:
            raise err.fail(405, f"Method {request.method} is not allowed on {request.path}") from None
        except (NotFound, HTTPException):
            raise err.not_found() from None
        searching = endpoint is objects.do_search
        headers: dict[str, str] = {}
        if self.daily_used >= self.daily_limit:
            # The daily quota covers every request of the account until midnight in its time zone (usage
            # guidelines); the refusal is not counted. Body: err.rate_limited("DAILY").
            raise err.rate_limited("DAILY", headers=self._limit_headers(arrived, daily=True))
        if searching:
            if not self.search_window.take(arrived):
                raise err.rate_limited("SECONDLY")
        else:
            if not self.burst.take(arrived):
                raise err.rate_limited("TEN_SECONDLY_ROLLING", headers=self._limit_headers(arrived, daily=False))
            self.daily_used += 1
            headers = self._limit_headers(arrived, daily=True)
        call = Call(self.store, request, self.search_lag_s)
        try:
            status, body = endpoint(call, **args)
        except err.HubSpotError as exc:
            exc.headers = {**headers, **exc.headers}
            return exc.status, exc.body, exc.headers, True
        return status, body, headers, True

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self.tokens

    def _injected(self, path: str) -> err.HubSpotError | None:
        for rule in self.failures:
            if rule.remaining > 0 and (rule.path_contains is None or rule.path_contains in path):
                rule.remaining -= 1
                self.failures = [r for r in self.failures if r.remaining > 0]
                return err.injected(rule.status, rule.retry_after)
        return None

    def _limit_headers(self, now: float, *, daily: bool) -> dict[str, str]:
        if self.burst.limit is None:
            return {}
        headers = {
            "X-HubSpot-RateLimit-Max": str(self.burst.limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.burst.limit - self.burst.used(now), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.burst.seconds * 1000)),
        }
        if daily:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(self.daily_limit - self.daily_used, 0))
        return headers


def _render(status: int, body: Any, headers: dict[str, str]) -> Response:
    correlation = body.get("correlationId") if isinstance(body, dict) else None
    all_headers = {"x-hubspot-correlation-id": str(correlation or err.correlation_id()), **headers}
    if status == 204 or body is None:
        return Response(status=status, headers=all_headers)
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(payload, status=status, headers=all_headers, content_type="application/json;charset=utf-8")
