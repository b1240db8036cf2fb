"""The few HubSpot properties-API requests `crm-setup` and the schema check make, through hubspot-api-client v12.

Set up like the sink's client (``connector/sinks/hubspot/client.py``) and for the same reasons: ``host=`` points
every module at ``base_url`` (emulator, proxy), urllib3 retries are off (a silent retry of a POST hides what
happened), and every request passes ``_request_timeout``. The properties module has its OWN ``ApiException`` class
(not one of those the sink translates), so its failures are translated here, into messages an operator can act
on ("token rejected"), with HubSpot's own status, code and message classified by the sink's ``classify``.

Only a 429 is retried (HubSpot refused before doing anything, so even a POST is safe to send again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Self

import urllib3.exceptions

from connector.errors import AuthError, RateLimited
from connector.sinks.hubspot.client import REQUEST_TIMEOUT
from connector.sinks.hubspot.errors import classify
from connector.sinks.setup import PropertySpec, SchemaAccessError

RATE_LIMIT_RETRIES = 3
MAX_RATE_WAIT_S = 10.0
"""A burst window; a longer wait (the daily quota) fails instead of hanging the command."""


class AlreadyExists(Exception):
    """HubSpot answered 409: the group or property is there already (created by us earlier, or by a person)."""


class HubSpotSchemaApi:
    """Properties and property groups of one portal. Close it when done (it holds connection pools)."""

    def __init__(self, access_token: str, base_url: str, *, sink: str = "hubspot") -> None:
        import hubspot
        from urllib3.util.retry import Retry

        no_retries = Retry(
            total=0,
            connect=0,
            read=0,
            redirect=0,
            status=0,
            other=0,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        client = hubspot.Client.create(access_token=access_token, host=base_url.rstrip("/"), retry=no_retries)
        self._core = client.crm.properties.core_api
        self._groups = client.crm.properties.groups_api
        self.base_url = base_url
        self.sink = sink

    def close(self) -> None:
        for api in (self._core, self._groups):
            api.api_client.close()
            api.api_client.rest_client.pool_manager.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------------

    def properties(self, object_type: str) -> list[dict[str, Any]]:
        """Every (non-archived) property of an object, as HubSpot's JSON (camelCase keys)."""
        answer = self._call(self._core.get_all, object_type, archived=False)
        serialize = self._core.api_client.sanitize_for_serialization
        return [serialize(p) for p in (answer.results or [])] if answer is not None else []

    def group_names(self, object_type: str) -> set[str]:
        answer = self._call(self._groups.get_all, object_type)
        return {g.name for g in (answer.results or [])} if answer is not None else set()

    def create_group(self, object_type: str, name: str, label: str) -> None:
        """Create a property group; AlreadyExists on 409."""
        from hubspot.crm.properties import PropertyGroupCreate

        body = PropertyGroupCreate(name=name, label=label, display_order=-1)
        self._call(self._groups.create, object_type, property_group_create=body, conflict_ok=True)

    def create_property(self, spec: PropertySpec) -> None:
        """Create a property; AlreadyExists on 409."""
        from hubspot.crm.properties import OptionInput, PropertyCreate

        options = [
            OptionInput(label=label, value=value, display_order=index, hidden=False)
            for index, (label, value) in enumerate(spec.options)
        ]
        body = PropertyCreate(
            name=spec.name,
            label=spec.label,
            type=spec.type,
            field_type=spec.field_type,
            group_name=spec.group,
            description=spec.description or None,
            options=options or None,
            form_field=False,
        )
        self._call(self._core.create, spec.object, property_create=body, conflict_ok=True)

    def _call(self, method: Callable[..., Any], *args: Any, conflict_ok: bool = False, **kwargs: Any) -> Any:
        from hubspot.crm.properties import ApiException

        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            except ApiException as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status == 409 and conflict_ok:
                    raise AlreadyExists() from exc
                error = classify(status, getattr(exc, "body", None), getattr(exc, "headers", None))
                wait = error.retry_after or 0.0
                if isinstance(error, RateLimited) and attempt < RATE_LIMIT_RETRIES and wait <= MAX_RATE_WAIT_S:
                    time.sleep(wait)
                    continue
                raise SchemaAccessError(self._explain(status, error), status=status or None) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                detail = f"{self.base_url}: {_transport_kind(exc)}"
                raise SchemaAccessError(f"HubSpot not reachable ({detail})", unreachable=True, detail=detail) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _explain(self, status: int, error: Any) -> str:
        """A message saying what to do, with HubSpot's own words kept."""
        said = f" (HubSpot said: {error.crm_message})" if error.crm_message else ""
        if status == 401:
            return f"HubSpot token rejected (401): check sinks.{self.sink}.access_token{said}"
        if status == 403 or isinstance(error, AuthError):
            return (
                f"HubSpot refused the request (403 {error.code or ''}): the private app needs the "
                f"crm.schemas.*.read and crm.schemas.*.write scopes for contacts, calls and tasks{said}"
            )
        if isinstance(error, RateLimited):
            return f"HubSpot rate limit hit (429); try again in {error.retry_after or 10:.0f} s{said}"
        return f"HubSpot answered {status or 'a failed TLS handshake'} {error.code or ''}".rstrip() + said


def _transport_kind(exc: BaseException) -> str:
    """A short, data-free name of a network failure (urllib3's MaxRetryError wraps the real reason)."""
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else None
    return type(reason or exc).__name__
