"""Which Contact or Lead a call belongs to: by a CRM id from ``meta``, else by phone with ONE SOSL search.

Why SOSL and not SOQL: ``Phone`` keeps whatever a human typed (``(202) 555-0143``), so SOQL equality on the E.164
form misses it, while SOSL ``IN PHONE FIELDS`` ignores formatting. The search asks for the E.164 digits (``+`` is a
reserved character) OR the national form's digits (with and without a trunk prefix, ``connector.phones``), returns
the mapping's phone fields, and a match counts only when one of THOSE fields holds the number by the shared phone
matcher ``connector.phones.same_number`` (SOSL also searches Fax, AssistantPhone, …). Converted Leads are excluded.

Why two in-process caches: SOSL's index is asynchronous, so a Lead created seconds ago is not found and a second
call would create it again (E.164 → record; the engine also caches across processes in the ledger); and a ``meta``
id verified once need not cost a GET per event (object+id → verified). Both are ``cachetools.TTLCache``s: an
entry expires ``CACHE_TTL_S`` after it was stored, and the least recently used goes first beyond ``CACHE_SIZE``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cachetools import TTLCache
from simple_salesforce.format import format_soql

from connector.errors import PermanentError, SinkError
from connector.phones import number_forms, same_number
from connector.plan import MatchById, MatchByPhone, ResolveContact
from connector.sinks.base import ActionResult
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.errors import RECORD_ID, identifier, sosl_term
from connector.sinks.salesforce.fields import FieldTypes

CACHE_TTL_S = 3600.0
CACHE_SIZE = 10_000
_MISSING = frozenset(
    {"NOT_FOUND", "MALFORMED_ID", "INVALID_ID_FIELD", "INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED"}
)
_ORDER = ("CreatedDate", "LastActivityDate", "LastModifiedDate")


def _expiring() -> TTLCache[Any, Any]:
    """A bounded map whose entries expire: stale ids must not live as long as the process."""
    return TTLCache(maxsize=CACHE_SIZE, ttl=CACHE_TTL_S, timer=time.monotonic)


def phone_search(rule: MatchByPhone) -> str:
    """The SOSL statement for one phone rule (objects in the rule's order: Contacts before Leads)."""
    forms = number_forms(rule.e164)
    if not forms:
        raise PermanentError("the call's number has no digits to search for", code="INVALID_PHONE")
    fields = ", ".join(["Id", *_ORDER, *(identifier(f, "field") for f in rule.fields)])
    returning = ", ".join(
        f"{identifier(o, 'object')}({fields}{' WHERE IsConverted = false' if o.lower() == 'lead' else ''})"
        for o in rule.objects
    )
    return f"FIND {{{' OR '.join(sosl_term(f) for f in forms)}}} IN PHONE FIELDS RETURNING {returning}"


def choose(records: list[dict[str, Any]], policy: str, sobject: str) -> dict[str, Any]:
    """One record among several sharing the number, as ``if_several`` says."""
    if len(records) == 1:
        return records[0]
    if policy == "hold":
        raise PermanentError(
            f"{len(records)} {sobject} records share the call's number and the mapping says hold",
            code="AMBIGUOUS_CONTACT",
            crm_message=(
                f"{len(records)} {sobject} records match the number (if_several: hold); merge them "
                "or set the CRM id in meta, then replay the event"
            ),
        )
    if policy == "most_recently_active":
        return max(records, key=lambda r: (r.get("LastActivityDate") or "", r.get("LastModifiedDate") or ""))
    return min(records, key=lambda r: (r.get("CreatedDate") or "9999", r.get("Id") or ""))


def _type_of(record: dict[str, Any]) -> str:
    return str((record.get("attributes") or {}).get("type", "")).lower()


class ContactResolver:
    """Runs a ResolveContact action's rules in order."""

    def __init__(self, connection: SalesforceConnection, types: FieldTypes) -> None:
        self._connection = connection
        self._types = types
        self._phones: TTLCache[str, tuple[str, str]] = _expiring()
        """E.164 → (object, id) this process resolved or created."""
        self._verified: TTLCache[tuple[str, str], str] = _expiring()
        """(lower-case object, 15-character id) → the id as Salesforce answered it, verified by a GET."""
        self._lock = threading.Lock()
        """TTLCache is not thread-safe; batch workers share a sink."""

    def resolve(self, action: ResolveContact, *, create: bool, recheck: bool = False) -> ActionResult | None:
        """The contact; None when nothing matched and ``create`` is False (a lookup).

        ``recheck``: an earlier create may have been committed without us hearing back; find it before creating.
        """
        for rule in action.match:
            found = self._by_id(rule) if isinstance(rule, MatchById) else self._by_phone(action, rule)
            if found is not None:
                return found
        if action.on_no_match == "skip":
            return ActionResult(skipped=True, detail={"reason": "no_match"})
        if recheck or not create:
            created = self._find_created(action)
            if created is not None or not create:
                return created
        return self._create(action)

    def cached(self, e164: str) -> tuple[str, str] | None:
        """(object, id) this process resolved or created for the number within the cache's lifetime."""
        with self._lock:
            return self._phones.get(e164)

    def remember(self, e164: str, sobject: str, crm_id: str) -> None:
        with self._lock:
            self._phones[e164] = (sobject, crm_id)

    def forget(self, crm_id: str) -> None:
        """Drop every cached entry naming this record: Salesforce says it no longer exists."""
        short = crm_id[:15]
        with self._lock:
            for e164, (_, cached) in list(self._phones.items()):
                if cached[:15] == short:
                    self._phones.pop(e164, None)
            for key in [k for k in list(self._verified) if k[1] == short]:
                self._verified.pop(key, None)

    def _by_id(self, rule: MatchById) -> ActionResult | None:
        if not RECORD_ID.match(rule.id):
            return None  # Salesforce would answer MALFORMED_ID/404: not worth an API call
        sobject = identifier(rule.object, "object")
        detail = {"matched_by": "id", "source": rule.source}
        with self._lock:
            cached = self._verified.get((sobject.lower(), rule.id[:15]))
        if cached is not None:
            return ActionResult(crm_id=cached, object=sobject, detail={**detail, "verified": "cached"})
        try:
            record = self._connection.call(
                lambda sf: sf.restful(f"sobjects/{sobject}/{rule.id}", params={"fields": "Id"}), where=f"get {sobject}"
            )
        except SinkError as exc:
            if isinstance(exc, PermanentError) and (exc.status == 404 or exc.code in _MISSING):
                return None
            raise
        crm_id = str((record or {}).get("Id") or rule.id)
        with self._lock:
            self._verified[(sobject.lower(), rule.id[:15])] = crm_id
        return ActionResult(crm_id=crm_id, object=sobject, detail=detail)

    def _by_phone(self, action: ResolveContact, rule: MatchByPhone) -> ActionResult | None:
        allowed = {o.lower() for o in rule.objects} | {(action.create_object or "").lower()}
        with self._lock:
            cached = self._phones.get(rule.e164)
        if cached is not None and cached[0].lower() in allowed:
            return ActionResult(
                crm_id=cached[1], object=cached[0], detail={"matched_by": "phone", "resolved_by": "sink_cache"}
            )
        statement = phone_search(rule)
        answer = self._connection.call(lambda sf: sf.search(statement), where="search (SOSL)")
        records = [r for r in (answer or {}).get("searchRecords", []) if isinstance(r, dict)]
        for sobject in rule.objects:
            matching = [
                r
                for r in records
                if _type_of(r) == sobject.lower() and any(same_number(r.get(f), rule.e164) for f in rule.fields)
            ]
            if matching:
                chosen = choose(matching, action.on_multiple, sobject)
                self.remember(rule.e164, sobject, str(chosen["Id"]))
                return ActionResult(
                    crm_id=str(chosen["Id"]),
                    object=sobject,
                    detail={"matched_by": "phone", "candidates": len(matching)},
                )
        return None

    def _phone_rule(self, action: ResolveContact) -> MatchByPhone | None:
        return next((r for r in action.match if isinstance(r, MatchByPhone)), None)

    def _create(self, action: ResolveContact) -> ActionResult:
        sobject = identifier(action.create_object or "Lead", "object")
        self._types.ensure([sobject])
        fitted = self._types.fit_body(sobject, dict(action.create_properties))
        body = fitted.values
        answer = self._connection.call(
            lambda sf: sf.restful(f"sobjects/{sobject}", method="POST", json=body), where=f"create {sobject}"
        )
        crm_id = str((answer or {}).get("id"))
        rule = self._phone_rule(action)
        if rule is not None:
            self.remember(rule.e164, sobject, crm_id)
        return ActionResult(
            crm_id=crm_id, object=sobject, created=True, detail={"matched_by": "created", **fitted.detail()}
        )

    def _find_created(self, action: ResolveContact) -> ActionResult | None:
        """The record an earlier create of this action wrote (SOQL: exact, and not subject to search lag)."""
        rule = self._phone_rule(action)
        sobject = identifier(action.create_object or "Lead", "object")
        if rule is None:
            return None
        fields = [identifier(k, "field") for k, v in action.create_properties.items() if v == rule.e164]
        if not fields:
            return None
        where = " OR ".join(format_soql("{field:literal} = {number}", field=f, number=rule.e164) for f in fields)
        soql = format_soql(
            "SELECT Id FROM {sobject:literal} WHERE ({where:literal}) ORDER BY CreatedDate DESC LIMIT 1",
            sobject=sobject,
            where=where,
        )
        answer = self._connection.call(lambda sf: sf.query(soql), where=f"query {sobject}")
        records = (answer or {}).get("records") or []
        if not records:
            return None
        crm_id = str(records[0]["Id"])
        self.remember(rule.e164, sobject, crm_id)
        return ActionResult(
            crm_id=crm_id, object=sobject, created=True, detail={"matched_by": "created", "found_by": "query"}
        )
