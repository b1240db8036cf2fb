"""A generic HTTP sink: each planned action is POSTed as JSON to your own endpoint.

Useful on its own (forward call outcomes to an in-house system or a CRM we have no sink for) and
the reference example of the extension point (docs/sinks.md). The endpoint contract:

- ``POST {url}/actions`` with ``{"key", "kind", "action", "contact"}`` → 2xx ``{"id": "..."}``;
- ``GET {url}/actions/{key}`` → 200 ``{"id": "..."}`` when that key was written, 404 otherwise;
- ``GET {url}/health`` → 2xx when the credentials work.

Errors: 401/403 pause the sink; 429 (with ``Retry-After``) rate-limits it; 408, 5xx, timeouts and
connection errors retry; other 4xx dead-letter with the endpoint's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import Field

from connector.errors import AuthError, PermanentError, RateLimited, TransientError
from connector.plan import Action
from connector.sinks.base import ActionResult, ExecutionContext, RateGate, SinkCapabilities, SinkType
from connector.sinks.retry_after import retry_after_header
from connector.sinks.settings import SinkSettingsBase

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class HttpSinkSettings(SinkSettingsBase):
    """Config of a `type: http` sink."""

    type: Literal["http"] = "http"
    url: str = Field(description="Base URL of the endpoint.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request (e.g. auth).")
    timeout_s: float = Field(READ_TIMEOUT_S, gt=0)


class HttpSink:
    """Posts actions to an HTTP endpoint; see the module docstring for the contract."""

    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities()

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = (
            settings
            if isinstance(settings, HttpSinkSettings)
            else HttpSinkSettings.model_validate(settings.model_dump())
        )
        self._session: requests.Session | None = None
        self._gate: RateGate | None = None

    def open(self, gate: RateGate) -> None:
        self._gate = gate
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": "twox-crm-connector", **self.settings.headers})

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        contact = context.contact()
        body = {
            "key": action.key,
            "kind": action.kind,
            "action": action.model_dump(mode="json"),
            "contact": contact.crm_id if contact else None,
        }
        answer = self._request("POST", "/actions", json=body)
        payload = answer.json() if answer.content else {}
        return ActionResult(
            crm_id=str(payload.get("id")) if payload.get("id") is not None else None,
            object=payload.get("object", action.kind),
            created=answer.status_code == 201,
        )

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        answer = self._request("GET", f"/actions/{quote(action.key, safe='')}", allow=(404,))
        if answer.status_code == 404:
            return None
        payload = answer.json()
        return ActionResult(crm_id=str(payload.get("id")), object=payload.get("object", action.kind))

    def check_auth(self) -> None:
        self._request("GET", "/health")

    def _request(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> requests.Response:
        assert self._session is not None and self._gate is not None, "open() first"
        self._gate.wait()
        with _translated_errors():
            answer = self._session.request(
                method,
                self.settings.url.rstrip("/") + path,
                timeout=(CONNECT_TIMEOUT_S, self.settings.timeout_s),
                **kwargs,
            )
        if answer.ok or answer.status_code in allow:
            return answer
        raise _classify(answer)


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except requests.Timeout as exc:
        raise TransientError(f"timeout: {exc.__class__.__name__}") from exc
    except requests.ConnectionError as exc:
        raise TransientError(f"connection failed: {exc.__class__.__name__}") from exc


def _classify(answer: requests.Response) -> Exception:
    status = answer.status_code
    message = answer.text[:1000]
    if status in (401, 403):
        return AuthError(f"HTTP {status}", status=status, crm_message=message)
    if status == 429:
        return RateLimited(
            f"HTTP {status}", status=status, crm_message=message, retry_after=retry_after_header(answer.headers)
        )
    if status == 408 or status >= 500:
        return TransientError(
            f"HTTP {status}", status=status, crm_message=message, retry_after=retry_after_header(answer.headers)
        )
    return PermanentError(f"HTTP {status}", status=status, crm_message=message)


factory = SinkType(settings_model=HttpSinkSettings, build=HttpSink)
"""Entry point of the `http` sink type: its settings model and its factory (no optional abilities)."""
