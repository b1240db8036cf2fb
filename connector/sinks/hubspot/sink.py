"""The HubSpot sink: a planned call lands on a HubSpot contact through hubspot-api-client v12.

Per event: resolve the contact (meta id, else phone search, else create), log the call as a HubSpot Call associated
to the contact in the same request, PATCH the contact's properties, and create a callback Task when planned. Why it
caches contacts, verifies ``meta`` ids, looks writes up in the record store, remembers unconfirmed writes and skips
only the properties a portal lacks: docs/hubspot.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from connector.errors import (
    AuthError,
    AwaitingIndex,
    OutcomeUnknown,
    PermanentError,
    SinkError,
    StaleContact,
)
from connector.plan import (
    Action,
    CloseCallbacks,
    CreateActivity,
    CreateTask,
    DoNotCallGuarded,
    MatchById,
    MatchByPhone,
    ResolveContact,
    UpdateContact,
)
from connector.sinks.base import ActionResult, ExecutionContext, RateGate, SinkCapabilities
from connector.sinks.drift import (
    DriftPolicy,
    probe_held,
    protected_fields,
    send_without_refused,
    skipped_detail,
)
from connector.sinks.hubspot import batch, callbacks, resolve
from connector.sinks.hubspot.associations import association
from connector.sinks.hubspot.client import HubSpotApi
from connector.sinks.hubspot.contacts import (
    ContactCache,
    choose,
    hubspot_properties,
    phone_filter_groups,
    same_number_records,
    search_properties,
)
from connector.sinks.hubspot.errors import existing_id
from connector.sinks.hubspot.parts import QUESTION_PREFIX, SinkParts
from connector.sinks.hubspot.schema import PropertySchema
from connector.sinks.hubspot.settings import HubSpotSinkSettings
from connector.sinks.uncertain import UncertainWrites

log = logging.getLogger(__name__)
CREATE_SETTLE_S = 10.0
"""After an unconfirmed contact create, how long the search index is given before a contact is created again."""
LOOKUP_SEARCH_RETRIES_S = (1.0, 2.0)
"""Pauses between searches when a lookup can only use the (lagging) search index."""

Engagement = CreateActivity | CreateTask


class HubSpotSink:
    """Executes plans against one HubSpot portal (design: docs/hubspot.md)."""

    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities(
        requests_per_window=190, window_s=10.0, max_batch=100, rate_limited_wait_s=10.0
    )
    """190 requests / 10 s: HubSpot's Professional/Enterprise private-app burst limit (`rate_limit` overrides);
    HubSpot does not promise a Retry-After with a 429: wait out its 10-second window."""

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = (
            settings
            if isinstance(settings, HubSpotSinkSettings)
            else HubSpotSinkSettings.model_validate(settings.model_dump())
        )
        self._cache = ContactCache()
        self.schema = PropertySchema(lambda object_type: self.api.properties(object_type))
        """Property definitions, read at first need, for fitting values (``hubspot.schema``)."""
        self._api: HubSpotApi | None = None
        self._parts: SinkParts | None = None
        self._uncertain = UncertainWrites()
        self._drift = DriftPolicy(name, hold=self.settings.on_missing_field == "hold")

    # -- lifecycle --------------------------------------------------------------------------------

    def open(self, gate: RateGate) -> None:
        self._api = HubSpotApi(
            self.settings.access_token.get_secret_value(),
            self.settings.base_url,
            gate,
            account_zone=self.settings.account_time_zone,
        )
        self._parts = SinkParts(
            name=self.name,
            api=self._api,
            cache=self._cache,
            schema=self.schema,
            uncertain=self._uncertain,
            drift=self._drift,
            auto_create_questions=self.settings.auto_create_question_properties,
            execute_one=self.execute,
        )

    def close(self) -> None:
        self._parts = None
        if self._api is not None:
            self._api.close()
            self._api = None

    @property
    def api(self) -> HubSpotApi:
        assert self._api is not None, "open() first"
        return self._api

    @property
    def _collaborators(self) -> SinkParts:
        assert self._parts is not None, "open() first"
        return self._parts

    def check_auth(self) -> None:
        """One cheap authenticated read; AuthError on 401/403. Paused for properties the portal lacked: MissingFields
        until they exist again."""
        self.api.probe()
        if self._drift.held:
            probe_held(self._drift, lambda obj, names: {n for n in names if not self.api.property_exists(obj, n)})

    # -- the Sink protocol ------------------------------------------------------------------------

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        if isinstance(action, ResolveContact):
            return self._resolve(action)
        if isinstance(action, (CreateActivity, CreateTask)):
            return self._create_engagement(action, context)
        if isinstance(action, UpdateContact):
            return self._update_contact(action, context)
        if isinstance(action, CloseCallbacks):
            return callbacks.close_callbacks(self.api, action, context)
        raise PermanentError(f"the HubSpot sink cannot execute {action.kind!r} actions", code="UNSUPPORTED_ACTION")

    def execute_batch(self, items: list[tuple[Action, ExecutionContext]]) -> list[ActionResult | SinkError]:
        """Several events' actions of one kind in as few requests as HubSpot allows (see hubspot.batch)."""
        return batch.execute_batch(self._collaborators, items)

    def resolve_many(self, actions: list[ResolveContact]) -> list[ActionResult | SinkError]:
        """Many events' contacts in one search per 100 numbers and one batch create per 100 new ones (backlog path,
        see hubspot.resolve); results in order, an action's own failure as its item."""
        return resolve.resolve_many(self._collaborators, actions)

    def unsettle(self, keys: list[str]) -> None:
        """Treat these writes as possibly done: the next attempt looks (or waits for the index) before writing."""
        self._uncertain.mark(keys)

    def do_not_call_set(self, action: DoNotCallGuarded, context: ExecutionContext) -> str | None:
        """Which do-not-call property is true on the contact in HubSpot now (read before a callback task)."""
        return callbacks.do_not_call_set(self.api, action, context)

    def do_not_call_many(self, items: list[tuple[DoNotCallGuarded, ExecutionContext]]) -> list[str | None]:
        """``do_not_call_set`` for many callback tasks in one batch read per 100 contacts (backlog path)."""
        return callbacks.do_not_call_many(self.api, items)

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        """Find a Call/Task an interrupted attempt wrote. Contact resolution and updates are safe to re-run."""
        if isinstance(action, (CreateActivity, CreateTask)) and action.idempotency_property:
            return self._find_written(action, context)
        return None

    # -- resolving the contact --------------------------------------------------------------------

    def _resolve(self, action: ResolveContact) -> ActionResult:
        for rule in action.match:
            found = self._by_id(rule) if isinstance(rule, MatchById) else self._by_phone(rule, action.on_multiple)
            if found is not None:
                self._uncertain.settle([action.key])
                return found
        since = self._uncertain.since(action.key)
        if since is not None and (remaining := since + CREATE_SETTLE_S - time.monotonic()) > 0:
            raise AwaitingIndex(
                "waiting for HubSpot's search index after an unconfirmed contact create", retry_after=remaining
            )
        if action.on_no_match == "skip":
            return ActionResult(skipped=True, detail={"reason": "no_match"})
        return self._create_contact(action)

    def _by_id(self, rule: MatchById) -> ActionResult | None:
        cached = self._cache.get((rule.object, "id", rule.id))
        if cached is not None:
            return ActionResult(crm_id=cached, object=rule.object, detail={"matched_by": "id", "cached": True})
        if not rule.id.isdigit():
            return None  # HubSpot ids are numeric; it would answer 404
        try:
            record = self.api.get(rule.object, rule.id)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        # Use the id HubSpot answers with (it may differ for a merged-away contact id: UNVERIFIED, harmless).
        crm_id = str(getattr(record, "id", None) or rule.id)
        self._cache.put((rule.object, "id", rule.id), crm_id)
        return ActionResult(crm_id=crm_id, object=rule.object, detail={"matched_by": "id"})

    def _by_phone(self, rule: MatchByPhone, on_multiple: str) -> ActionResult | None:
        for object_type in rule.objects:
            key = _phone_key(object_type, rule)
            cached = self._cache.get(key)
            if cached is not None:
                return ActionResult(crm_id=cached, object=object_type, detail={"matched_by": "phone", "cached": True})
            records: dict[str, Any] = {}
            for groups in phone_filter_groups(rule.fields, rule.e164):
                for record in self.api.search(object_type, groups, search_properties(rule.fields), sort="createdate"):
                    records.setdefault(str(record.id), record)
            confirmed = same_number_records(list(records.values()), rule.fields, rule.e164)  # fitting: one matcher
            if not confirmed:
                continue
            records = {str(r.id): r for r in confirmed}
            chosen = choose(confirmed, on_multiple)
            crm_id = str(chosen.id)
            self._cache.put(key, crm_id)
            self._cache.put((object_type, "id", crm_id), crm_id)
            return ActionResult(
                crm_id=crm_id, object=object_type, detail={"matched_by": "phone", "candidates": len(records)}
            )
        return None

    def _create_contact(self, action: ResolveContact) -> ActionResult:
        object_type = action.create_object or "contacts"
        fitted = self.schema.fit(object_type, hubspot_properties(action.create_properties))  # fitting
        properties = fitted.values
        try:
            record = self._write(action.key, lambda: self.api.create(object_type, properties, []))
            crm_id, created = str(record.id), True
        except PermanentError as exc:
            existing = existing_id(exc)  # 409: a contact with this email exists; it is the one
            if existing is None:
                raise
            crm_id, created = existing, False
        for rule in action.match:
            if isinstance(rule, MatchByPhone) and object_type in rule.objects:
                self._cache.put(_phone_key(object_type, rule), crm_id)  # read-your-writes for the next event
        self._cache.put((object_type, "id", crm_id), crm_id)
        return ActionResult(
            crm_id=crm_id,
            object=object_type,
            created=created,
            detail={"matched_by": "created" if created else "existing_email", **fitted.detail()},
        )

    # -- writing ------------------------------------------------------------------------------------

    def _create_engagement(self, action: Engagement, context: ExecutionContext) -> ActionResult:
        contact = context.contact()
        associations: list[dict[str, Any]] = []
        if action.associate_with_contact:
            if contact is None or contact.skipped or not contact.crm_id:
                return ActionResult(skipped=True, detail={"reason": "no_contact"})
            associations = [association(action.object, contact)]
        if action.key in self._uncertain:  # an earlier attempt in this process may have written it
            found = self.lookup(action, context)
            if found is not None:
                self._uncertain.settle([action.key])
                return found
        properties = hubspot_properties(action.properties)
        if action.idempotency_property:
            properties.setdefault(action.idempotency_property, action.idempotency_key)
        fitted = self.schema.fit(action.object, properties, keep=[action.idempotency_property or ""])  # fitting
        properties = fitted.values
        try:
            record, skipped = send_without_refused(
                lambda body: self._write(action.key, lambda: self.api.create(action.object, body, associations)),
                properties,
                sobject=action.object,
                protected=protected_fields(action),
                policy=self._drift,
            )
        except StaleContact:
            if contact is not None and contact.crm_id:
                self._cache.forget_value(contact.crm_id)  # deleted or merged in HubSpot: resolve afresh next time
            raise
        if record is None:
            return ActionResult(
                object=action.object,
                skipped=True,
                detail=skipped_detail({"reason": "no_field_left", **fitted.detail()}, skipped),
            )
        return ActionResult(
            crm_id=str(record.id), object=action.object, created=True, detail=skipped_detail(fitted.detail(), skipped)
        )

    def _update_contact(self, action: UpdateContact, context: ExecutionContext) -> ActionResult:
        contact = context.contact()
        if contact is None or contact.skipped or not contact.crm_id:
            return ActionResult(skipped=True, detail={"reason": "no_contact"})
        if not action.fields:
            return ActionResult(skipped=True, detail={"reason": "nothing_to_write"})
        object_type = action.object or contact.object or "contacts"
        crm_id = contact.crm_id
        fitted = self.schema.fit(object_type, hubspot_properties({f.property: f.value for f in action.fields}))
        properties = fitted.values  # fitting: every value fits its property
        try:
            written, skipped = send_without_refused(
                lambda body: self.api.update(object_type, crm_id, body),
                properties,
                sobject=object_type,
                protected=protected_fields(action),
                policy=self._drift,
                fix=self._question_property_creator(object_type),
            )
        except PermanentError as exc:
            if exc.status != 404:
                raise
            self._cache.forget_value(crm_id)
            raise StaleContact(
                f"contact {crm_id} no longer exists", status=404, code=exc.code, crm_message=exc.crm_message
            ) from exc
        return ActionResult(
            crm_id=crm_id,
            object=object_type,
            skipped=written is None,
            detail=skipped_detail({"fields": sorted(properties), **fitted.detail()}, skipped),
        )

    def _question_property_creator(self, object_type: str) -> Callable[[dict[str, str]], dict[str, str | None]]:
        """For one event: create the missing `twox_q_*` properties (connector-owned) among refused ones, up to
        ``max_question_properties_per_event``, and say which exist now; the rest stay refused (skipped).

        Only the connector's own ``twox_q_`` namespace is created, as text in the ``twox`` group: any other missing
        property is drift (a typo must not create junk). Names come from HubSpot's structured ``errors[]``, never
        from its message text, which is cut for the audit trail.
        """
        budget = [self.settings.max_question_properties_per_event]

        def create(refused: dict[str, str]) -> dict[str, str | None]:
            if not self.settings.auto_create_question_properties:
                return {}
            missing = sorted(
                n for n, code in refused.items() if code == "PROPERTY_DOESNT_EXIST" and n.startswith(QUESTION_PREFIX)
            )
            names, over = missing[: budget[0]], missing[budget[0] :]
            capped: dict[str, str | None] = {n: OVER_QUESTION_CAP for n in over}  # skipped, never held or fatal
            if not names:
                return capped
            budget[0] -= len(names)
            try:
                self.api.create_text_properties(
                    object_type,
                    [(n, "2X answer: " + n[len(QUESTION_PREFIX) :].replace("_", " ")) for n in names],
                    "twox",
                    "2X calls",
                )
            except (PermanentError, AuthError) as exc:
                if isinstance(exc, AuthError) and exc.status != 403:
                    raise
                # the portal's property limit, or no crm.schemas.*.write scope: the answers are skipped, not the call
                log.warning("question properties not created", extra={"sink": self.name, "code": exc.code})
                return capped
            return {**capped, **dict.fromkeys(names)}

        return create

    def _write(self, key: str, write: Callable[[], Any]) -> Any:
        """Run one create; remember the key when the failure leaves its outcome unknown."""
        try:
            result = write()
        except OutcomeUnknown:
            self._uncertain.mark([key])
            raise
        self._uncertain.settle([key])
        return result

    # -- finding what an interrupted attempt wrote --------------------------------------------------

    def _find_written(self, action: Engagement, context: ExecutionContext) -> ActionResult | None:
        name, value = action.idempotency_property or "", action.idempotency_key
        contact = context.contact()
        if action.associate_with_contact and contact is not None and contact.crm_id and not contact.skipped:
            # Record-store reads (associations, batch read) see a write at once; search may not for seconds.
            linked = self.api.associated_ids(contact.object or "contacts", contact.crm_id, action.object)
            for record in self.api.batch_read(action.object, linked[::-1], [name]):
                if (record.properties or {}).get(name) == value:
                    return _recovered(action, record, "associations")
            return None
        for pause in (0.0, *LOOKUP_SEARCH_RETRIES_S):
            time.sleep(pause)
            found = self.api.find_by_property(action.object, name, value)
            if found:
                return _recovered(action, found[0], "search")
        return None


OVER_QUESTION_CAP = "MAX_QUESTION_PROPERTIES"
"""skipped_fields code of an answer whose property was not created: the event had more new questions than
``max_question_properties_per_event``."""


def _phone_key(object_type: str, rule: MatchByPhone) -> tuple[str, tuple[str, ...], str]:
    return object_type, tuple(rule.fields), rule.e164


def _recovered(action: Engagement, record: Any, how: str) -> ActionResult:
    return ActionResult(crm_id=str(record.id), object=action.object, created=True, detail={"found_by": how})


def factory(name: str, settings: Any) -> HubSpotSink:
    """Entry point of the `hubspot` sink type."""
    return HubSpotSink(name, settings)
