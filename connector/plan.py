"""The plan: an ordered, typed, JSON-serializable list of CRM actions for one event and one sink.

Planning (connector.mapping) produces it without any I/O; sinks execute it. Every action carries a
stable `key` derived from the event id, so the delivery engine can journal each action and a sink
can find what an earlier, interrupted attempt already wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.keys import crm_key

JsonScalar = str | int | float | bool | None


def contact_action_key(event_id: str) -> str:
    """The key of a plan's resolve_contact action (the engine needs it to forget a stale contact)."""
    return f"{crm_key(event_id)}:contact"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MatchById(_Frozen):
    """Find the contact by a CRM id the CRM request put in `meta`."""

    by: Literal["id"] = "id"
    object: str
    id: str
    source: str
    """Where the id came from, e.g. `meta.hubspot_contact_id` (for the audit trail)."""


class MatchByPhone(_Frozen):
    """Find the contact by phone number across the listed fields of the listed objects."""

    by: Literal["phone"] = "phone"
    objects: list[str]
    fields: list[str]
    e164: str


MatchRule = Annotated[MatchById | MatchByPhone, Field(discriminator="by")]


class ResolveContact(_Frozen):
    """Which CRM record the call belongs to; always the first action of a plan."""

    kind: Literal["resolve_contact"] = "resolve_contact"
    key: str
    match: list[MatchRule]
    """Tried in order; the first rule that finds a record wins."""
    on_no_match: Literal["create", "skip"]
    create_object: str | None = None
    create_properties: dict[str, JsonScalar] = Field(default_factory=dict)
    on_multiple: Literal["oldest", "most_recently_active", "hold"]


class _RecordCreate(_Frozen):
    """A CRM record created once per event and purpose, findable again by its idempotency key."""

    key: str
    object: str
    idempotency_key: str
    properties: dict[str, JsonScalar]
    associate_with_contact: bool = True


class CreateActivity(_RecordCreate):
    """The call itself as a CRM activity (HubSpot Call, Salesforce Task), created once per event."""

    kind: Literal["create_activity"] = "create_activity"
    idempotency_property: str
    """CRM property holding `idempotency_key`, searchable so a retry finds the first write."""


class FieldUpdate(_Frozen):
    """One contact property the connector owns, with what decides whether it may be written."""

    property: str
    value: JsonScalar
    rule: Literal["newest_call", "ranked", "sticky_true", "always"]
    """newest_call: only a newer call overwrites; ranked: additionally a lower-ranked outcome never
    overwrites a higher-ranked one; sticky_true: only ever set to true, never cleared (do-not-call);
    always: plain write."""
    rank: int
    call_time: datetime
    objects: list[str] | None = None
    """Only write it when the contact resolved to one of these objects (e.g. Lead `Status`)."""


class UpdateContact(_Frozen):
    """Contact properties to set, each guarded by its precedence rule (checked at delivery time)."""

    kind: Literal["update_contact"] = "update_contact"
    key: str
    object: str | None = None
    """None: the object type the contact resolved to (Contact or Lead)."""
    fields: list[FieldUpdate]
    unless_do_not_call: list[str] = Field(default_factory=list)
    """Contact do-not-call properties guarding ``withheld_if_do_not_call``, checked as a callback task's are."""
    withheld_if_do_not_call: list[str] = Field(default_factory=list)
    """The fields a callback outcome sets (its status, its due date): when the contact is do-not-call they are left
    out, as its task is, so that no "callbacks due" view or status sends a rep to call a do-not-call contact. The
    rest of the update (every-call fields, answers, workflow flags) is written."""


class CreateTask(_RecordCreate):
    """A follow-up task (callback) due at a lead-local time, created once per event and purpose."""

    kind: Literal["create_task"] = "create_task"
    idempotency_property: str | None
    due: datetime
    """Aware, in the lead's zone: its ISO form carries the offset, never a bare UTC midnight."""
    due_local_date: str
    unless_do_not_call: list[str] = Field(default_factory=list)
    """Contact do-not-call properties: when any is true (written by the connector, or read from the CRM right
    before the write), the task is not created (skipped, audit reason ``do_not_call``)."""


DoNotCallGuarded = CreateTask | UpdateContact
"""The actions a contact's do-not-call can stop (a callback task) or cut (a callback outcome's contact fields)."""


class CloseCallbacks(_Frozen):
    """A do-not-call closes the open follow-up tasks the connector created for this contact.

    Idempotent: it finds the open tasks whose ``idempotency_property`` looks like a connector task key
    (``2x-<id>:task:<name>``) and sets ``set_properties`` on each; a retry finds nothing left open.
    """

    kind: Literal["close_callbacks"] = "close_callbacks"
    key: str
    object: str
    idempotency_property: str
    key_prefix: str = "2x-"
    key_marker: str = ":task:"
    """A connector task key starts with ``key_prefix`` and contains ``key_marker``."""
    close_as: Literal["completed", "cancelled"]
    set_properties: dict[str, JsonScalar]
    """Written to every closed task (the CRM's closed status)."""
    subject_property: str | None = None
    subject_prefix: str | None = None
    """close_as cancelled: the task's subject gets this prefix, so a rep sees why it was closed."""
    reason: Literal["do_not_call"] = "do_not_call"


class HoldForReview(_Frozen):
    """The mapping asks a human to look at this event before anything is written."""

    kind: Literal["hold"] = "hold"
    key: str
    reason: str


Action = Annotated[
    ResolveContact | CreateActivity | UpdateContact | CreateTask | CloseCallbacks | HoldForReview,
    Field(discriminator="kind"),
]


class OutcomeSummary(_Frozen):
    """Which outcome bundle the event fell into, and why."""

    bundle: str
    rank: int
    end_reason: str | None
    failure_reason: str | None
    matched_by: str
    """`when` conditions that selected the bundle, or `fallback`."""
    also: list[str] = Field(default_factory=list)
    """Additive rules that applied too (e.g. workflow ended)."""


class Plan(_Frozen):
    """Everything one event does to one sink's CRM, in execution order."""

    event_id: str
    sink: str
    crm: str
    mapping: str
    mapping_sha256: str
    call_time: datetime
    outcome: OutcomeSummary
    do_not_call: bool
    actions: list[Action]
    warnings: list[str] = Field(default_factory=list)

    def action(self, key: str) -> Any:
        """The action with this key (KeyError when absent)."""
        for action in self.actions:
            if action.key == key:
                return action
        raise KeyError(key)
