"""The few HubSpot requests the sink makes, each through the rate gate, with a timeout and error translation.

Built on hubspot-api-client v12's generic object API (``/crm/v3/objects/{type}``), so a mapping can log its calls as
another activity type (notes, meetings) without code changes, and on the v4 associations API.

Client set-up, and why:
- ``host=`` is copied by the SDK onto every generated ``Configuration`` (its setter clears ``server_index``), so
  ``base_url`` points every module at the emulator or a proxy.
- urllib3 retries are off (``Retry(total=0)``): the engine owns retries and journals each attempt, and a silent
  retry of a POST could log a call twice. Connect retries are off too, so an outage surfaces at once.
- The SDK sets no timeout; every call passes ``_request_timeout=(5, 30)``.
- Each ``client.crm…basic_api`` access builds a new ApiClient and connection pool, so the APIs are built once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connector.errors import OutcomeUnknown, PermanentError
from connector.sinks.base import RateGate
from connector.sinks.hubspot.errors import translated_errors

REQUEST_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for every request."""
SEARCH_SPACING_S = 0.21
"""Search has its own limit of 5 requests per second per account: this process keeps under it."""
BATCH_READ_MAX = 100
SEARCH_PAGE_MAX = 200
"""A search's largest ``limit`` (search guide: "a maximum of 200 objects per page",
https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm)."""
SEARCH_RESULTS_MAX = 10_000
"""A search pages through at most 10,000 results (same guide, "Limits")."""
ASSOCIATIONS_PAGE = 500
PROPERTY_BATCH_MAX = 100
"""Inputs per batch property create: HubSpot's batch endpoints take up to 100 (UNVERIFIED for properties: the
properties reference gives no number; the emulator enforces the same 100 as the object batch endpoints)."""
MAX_ASSOCIATED = 2_000
"""A consistency check reads at most this many associated records (2X calls a lead far fewer times)."""


class HubSpotApi:
    """One portal, one token. Thread-safe (the SDK's urllib3 pools are)."""

    def __init__(self, access_token: str, base_url: str, gate: RateGate, *, account_zone: str | None = None) -> None:
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
        self._basic = client.crm.objects.basic_api
        self._search = client.crm.objects.search_api
        self._batch = client.crm.objects.batch_api
        self._associations = client.crm.associations.v4.basic_api
        self._properties = client.crm.properties.core_api
        self._groups = client.crm.properties.groups_api
        self._property_batch = client.crm.properties.batch_api
        self._gate = gate
        self._account_zone = account_zone
        """Where the daily limit resets (``hubspot.errors.until_daily_reset``)."""
        self._search_lock = threading.Lock()
        self._last_search = 0.0

    def close(self) -> None:
        for api in (
            self._basic,
            self._search,
            self._batch,
            self._associations,
            self._properties,
            self._groups,
            self._property_batch,
        ):
            api.api_client.close()
            api.api_client.rest_client.pool_manager.clear()

    # -- requests ---------------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Every request goes through here: the shared budget, the timeout, one error translation."""
        self._gate.wait()
        with translated_errors(self._account_zone):
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)

    def _call_json(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """A request whose 2xx answer is read as plain JSON: (status, body). The SDK's models would parse every
        record's timestamps with dateutil, which costs a batch of 100 more CPU than everything else the worker
        does for it; errors are raised and translated exactly as in `_call`."""
        response = self._call(method, *args, _preload_content=False, **kwargs)
        try:
            status, data = int(response.status), response.data
        finally:
            response.release_conn()
        return status, json.loads(data) if data else {}

    def get(self, object_type: str, object_id: str, properties: list[str] | None = None) -> Any:
        return self._call(self._basic.get_by_id, object_type, object_id, properties=properties or ["hs_object_id"])

    def create(self, object_type: str, properties: dict[str, str], associations: list[dict[str, Any]]) -> Any:
        from hubspot.crm.objects import SimplePublicObjectInputForCreate

        body = SimplePublicObjectInputForCreate(properties=properties, associations=associations)
        created = self._call(self._basic.create, object_type, simple_public_object_input_for_create=body)
        if created is None:
            # The SDK returns None for a 2xx other than 201: something may have been written, we cannot tell what.
            raise OutcomeUnknown(f"HubSpot answered an unexpected success status creating {object_type}")
        return created

    def update(self, object_type: str, object_id: str, properties: dict[str, str]) -> Any:
        from hubspot.crm.objects import SimplePublicObjectInput

        body = SimplePublicObjectInput(properties=properties)
        return self._call(self._basic.update, object_type, object_id, simple_public_object_input=body)

    def search(
        self,
        object_type: str,
        filter_groups: list[dict[str, Any]],
        properties: list[str],
        *,
        sort: str | None = None,
        limit: int = 100,
    ) -> list[Any]:
        """Records matching any of the filter groups (one page: callers ask narrow questions)."""
        return self.search_page(object_type, filter_groups, properties, sort=sort, limit=limit)[0]

    def search_all(
        self, object_type: str, filter_groups: list[dict[str, Any]], properties: list[str], *, sort: str | None = None
    ) -> list[Any]:
        """Every record matching any of the filter groups, ``SEARCH_PAGE_MAX`` per request (a batched phone search
        asks about 100 numbers at once; a page rarely runs over), at most HubSpot's 10,000 search results."""
        found: list[Any] = []
        after: str | None = None
        while len(found) < SEARCH_RESULTS_MAX:
            page, after = self.search_page(
                object_type, filter_groups, properties, sort=sort, limit=SEARCH_PAGE_MAX, after=after
            )
            found += page
            if not after or int(after) + SEARCH_PAGE_MAX > SEARCH_RESULTS_MAX:
                break
        return found

    def search_page(
        self,
        object_type: str,
        filter_groups: list[dict[str, Any]],
        properties: list[str],
        *,
        sort: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Any], str | None]:
        """One page of a search and the ``after`` of the next page (None on the last)."""
        from hubspot.crm.objects import PublicObjectSearchRequest

        request = PublicObjectSearchRequest(
            filter_groups=filter_groups,
            properties=properties,
            limit=limit,
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}] if sort else None,
            after=after,
        )
        with self._search_lock:
            pause = self._last_search + SEARCH_SPACING_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._last_search = time.monotonic()
        found = self._call(self._search.do_search, object_type, public_object_search_request=request)
        if found is None:
            return [], None
        paging = getattr(found, "paging", None)
        following = paging.next.after if paging is not None and paging.next is not None else None
        return list(found.results or []), following

    def find_by_property(self, object_type: str, name: str, value: str) -> list[Any]:
        """Records whose ``name`` equals ``value``, oldest first."""
        group = {"filters": [{"propertyName": name, "operator": "EQ", "value": value}]}
        return self.search(
            object_type, [group], [name], sort="createdate" if object_type == "contacts" else "hs_createdate"
        )

    def associated_ids(self, object_type: str, object_id: str, to_type: str) -> list[str]:
        """Ids of the ``to_type`` records associated with one record, read from the record store (not the search
        index, so a record written a moment ago is there)."""
        ids: list[str] = []
        after: str | None = None
        while len(ids) < MAX_ASSOCIATED:
            kwargs: dict[str, Any] = {"limit": ASSOCIATIONS_PAGE, **({"after": after} if after else {})}
            page = self._call(self._associations.get_page, object_type, object_id, to_type, **kwargs)
            if page is None:
                break
            ids += [str(row.to_object_id) for row in page.results or []]
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                break
        return ids

    def batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> Iterator[Any]:
        """Records by id, with ``properties``, 100 per request (lazily: a caller that found what it wanted stops
        reading); ids that no longer exist are left out."""
        from hubspot.crm.objects import BatchReadInputSimplePublicObjectId

        for start in range(0, len(ids), BATCH_READ_MAX):
            chunk = ids[start : start + BATCH_READ_MAX]
            body = BatchReadInputSimplePublicObjectId(properties=properties, inputs=[{"id": i} for i in chunk])
            page = self._call(self._batch.read, object_type, batch_read_input_simple_public_object_id=body)
            yield from (page.results or []) if page is not None else []

    def batch_read_by(self, object_type: str, id_property: str, values: list[str], properties: list[str]) -> list[Any]:
        """Records by a unique property (``idProperty``, e.g. email), 100 per request, from the record store: a
        contact written a moment ago is found, unlike by search. Values no record holds are left out."""
        from hubspot.crm.objects import BatchReadInputSimplePublicObjectId

        found: list[Any] = []
        for start in range(0, len(values), BATCH_READ_MAX):
            body = BatchReadInputSimplePublicObjectId(
                properties=properties,
                id_property=id_property,
                inputs=[{"id": v} for v in values[start : start + BATCH_READ_MAX]],
            )
            page = self._call(self._batch.read, object_type, batch_read_input_simple_public_object_id=body)
            found += list(page.results or []) if page is not None else []
        return found

    def batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> list[BatchRecord]:
        """Up to 100 records in one request: `inputs` are {"properties", "associations"}. Results are not
        promised in input order (HubSpot's batch docs), so callers match them by a property they set."""
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputForCreate

        body = BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
        status, page = self._call_json(
            self._batch.create, object_type, batch_input_simple_public_object_batch_input_for_create=body
        )
        # The statuses the SDK maps to a body (hubspot-api-python v12, hubspot/crm/objects/api/batch_api.py,
        # `_response_types_map` of create: 201, 207; of update: 200, 207); any other 2xx it answered with None.
        if status not in (201, 207):
            raise OutcomeUnknown(f"HubSpot answered an unexpected success status to a batch create of {object_type}")
        return [BatchRecord.of(r) for r in page.get("results") or []]

    def batch_update(
        self, object_type: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[BatchRecord], list[BatchError]]:
        """Up to 100 updates {"id", "properties"}; returns (results, errors) — a 207 lists per-id errors."""
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput

        body = BatchInputSimplePublicObjectBatchInput(inputs=inputs)
        status, page = self._call_json(
            self._batch.update, object_type, batch_input_simple_public_object_batch_input=body
        )
        if status not in (200, 207):
            return [], []
        return (
            [BatchRecord.of(r) for r in page.get("results") or []],
            [BatchError(e.get("context") or {}, e.get("category"), e.get("message")) for e in page.get("errors") or []],
        )

    def create_text_properties(
        self, object_type: str, properties: list[tuple[str, str]], group: str, group_label: str
    ) -> None:
        """Create single-line text properties ``(name, label)`` in ``group`` (created when missing), 100 per
        ``POST /crm/v3/properties/{type}/batch/create`` (the SDK's properties ``batch_api.create``), instead of one
        request each. A batch refused because one of them exists already (another worker won the race: 409) is
        done again one by one, where an existing property is fine."""
        from hubspot.crm.properties import BatchInputPropertyCreate, PropertyCreate, PropertyGroupCreate

        def create(name: str, label: str) -> PropertyCreate:
            return PropertyCreate(name=name, label=label, type="string", field_type="text", group_name=group)

        try:
            self._call(
                self._groups.create,
                object_type,
                property_group_create=PropertyGroupCreate(name=group, label=group_label),
            )
        except PermanentError as exc:
            if exc.status != 409:
                raise
        for start in range(0, len(properties), PROPERTY_BATCH_MAX):
            chunk = properties[start : start + PROPERTY_BATCH_MAX]
            body = BatchInputPropertyCreate(inputs=[create(name, label) for name, label in chunk])
            try:
                self._call(self._property_batch.create, object_type, batch_input_property_create=body)
            except PermanentError as exc:
                if exc.status != 409:
                    raise
                for name, label in chunk:
                    try:
                        self._call(self._properties.create, object_type, property_create=create(name, label))
                    except PermanentError as single:
                        if single.status != 409:
                            raise

    def property_exists(self, object_type: str, name: str) -> bool:
        """Whether a (non-archived) property exists: ``GET /crm/v3/properties/{type}/{name}``, 404 when not."""
        try:
            self._call(self._properties.get_by_name, object_type, name)
        except PermanentError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def properties(self, object_type: str) -> list[Any]:
        """The object type's property definitions (``GET /crm/v3/properties/{objectType}``), for value fitting."""
        page = self._call(self._properties.get_all, object_type, archived=False)
        return list(page.results or []) if page is not None else []

    def probe(self) -> None:
        """The cheapest authenticated request: one contact id."""
        self._call(self._basic.get_page, "contacts", limit=1, properties=["hs_object_id"])


@dataclass(frozen=True)
class BatchRecord:
    """One record of a batch answer, as the batch callers read it (`id`, `properties`)."""

    id: str
    properties: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> BatchRecord:
        return cls(str(raw.get("id")), dict(raw.get("properties") or {}))


@dataclass(frozen=True)
class BatchError:
    """One per-record error of a 207 batch answer (`context` holds e.g. {"ids": [...]})."""

    context: dict[str, Any]
    category: str | None = None
    message: str | None = None
