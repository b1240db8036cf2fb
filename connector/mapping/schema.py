"""What a mapping YAML may say: pydantic models, closed (`extra="forbid"`), a description per field.

A mapping is data that sales ops own. It says, for one CRM: how to find the contact, what the
call activity looks like, where question answers land, and what each call outcome changes.
Values are literals or Jinja2 templates; templates are compiled when the mapping loads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.mapping.callback import CallbackPolicy
from connector.mapping.redaction import RedactionRule

Scalar = str | int | float | bool | None


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRuleSpec(_Closed):
    """One way of finding the contact; exactly one of `id_from` or `phone_fields`."""

    id_from: str | None = Field(None, description="Dotted path to a CRM id in the event, e.g. meta.hubspot_contact_id.")
    phone_fields: list[str] | None = Field(None, description="Phone properties compared with the lead's E.164 number.")
    object: str | None = Field(None, description="CRM object searched (default: contact.object).")
    objects: list[str] | None = Field(
        None, description="For phone matching: several objects, in order (Contact, Lead)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> MatchRuleSpec:
        if (self.id_from is None) == (self.phone_fields is None):
            raise ValueError("give exactly one of id_from or phone_fields")
        if self.id_from is not None and self.objects:
            raise ValueError("objects applies to phone_fields; use object for id_from")
        return self


class ContactSpec(_Closed):
    """How the contact is found, and created when it is not."""

    object: str = Field(description="Default CRM object for contacts (HubSpot: contacts; Salesforce: Contact).")
    match: list[MatchRuleSpec] = Field(min_length=1, description="Tried in order; first hit wins.")
    if_no_match: Literal["create", "skip"] = Field("create", description="Create a record, or deliver nothing.")
    if_several: Literal["oldest", "most_recently_active", "hold"] = Field(
        "oldest", description="Several records match: pick the oldest, the most recently active, or hold for review."
    )
    if_no_phone: Literal["create", "skip", "hold"] = Field(
        "create",
        description="A call with no usable phone number and no CRM id to match by: create a record anyway (it has "
        "no phone, so each such call creates another), deliver nothing to a contact (skip), or hold the delivery "
        "for review.",
    )
    create_object: str | None = Field(None, description="Object created when nothing matches (default: object).")
    create: dict[str, Scalar] = Field(default_factory=dict, description="Properties of a created record (templates).")


class FieldLimit(_Closed):
    """A CRM field's real size limit, and what to do with longer values."""

    max_length: int = Field(ge=64, description="Characters; at least 64 so the truncation marker fits.")
    on_too_long: Literal["truncate", "fail"] = Field(
        "truncate", description="truncate: cut and add a visible marker; fail: the plan fails (event replayable)."
    )


class ActivitySpec(_Closed):
    """The call as a CRM activity: one per event, found again through its idempotency key."""

    object: str
    idempotency_property: str = Field(
        description="Searchable property holding the key (hs_call_external_id, CallObject)."
    )
    idempotency_key: str = Field(
        "{{ id | crm_key }}",
        description="Template; must stay unique per event (default 2x-<id>, hashed past 128 chars).",
    )
    properties: dict[str, Scalar] = Field(description="Property → literal or template, for every call.")
    limits: dict[str, FieldLimit] = Field(default_factory=dict, description="Field size limits (activity and tasks).")


class TranscriptSpec(_Closed):
    """How the transcript is rendered for the `transcript_text` variable of templates."""

    format: Literal["text", "html", "markdown"] = "text"
    labels: dict[str, str] = Field(default_factory=dict, description="Speaker label per role (assistant, user, …).")
    redaction: Literal["default", "none"] | list[RedactionRule] = Field(
        "default", description="default: card numbers and US SSNs; none; or your own list of rules."
    )
    empty: str = Field("(no transcript)", description="Text used when the call has no transcript.")


class QuestionRule(_Closed):
    property: str
    transform: Literal["string", "as_is", "number", "bool"] | None = None
    values: dict[str, Scalar] = Field(default_factory=dict, description="Answer → stored value (after trimming).")


class QuestionFieldsSpec(_Closed):
    """Where answers to scripted questions land on the contact."""

    map: dict[str, QuestionRule] = Field(default_factory=dict, description="Question name → contact property.")
    wildcard: str | None = Field(
        None, description="Property for every other answer, `{name}` replaced by the sanitized question name."
    )
    name_style: Literal["hubspot", "salesforce"] = Field("hubspot", description="How names are sanitized.")
    transform: Literal["string", "as_is", "number", "bool"] = "string"
    rule: Literal["newest_call", "always"] = "newest_call"
    heading: str = Field("Answers", description="Heading of the `answers_text` block (every answer, readable).")


class WhenSpec(_Closed):
    """Conditions on the event; all given ones must hold. Lists mean "any of"."""

    end_reason: list[str] | None = None
    failure_reason: list[str] | None = Field(
        None, description="Use `none` to require that there is none, `any` for any."
    )
    answered: bool | None = None
    message_left: bool | None = None
    workflow_end: bool | None = None

    @field_validator("end_reason", "failure_reason", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ContactValue(_Closed):
    """Long form of a contact property in a bundle: value plus an explicit precedence rule."""

    value: Scalar
    rule: Literal["newest_call", "ranked", "always"] | None = Field(
        None, description="Default: sticky for do-not-call properties, ranked for ranked ones, else default_rule."
    )
    objects: list[str] | None = Field(None, description="Only when the contact is one of these objects (e.g. [Lead]).")


class BundleSpec(_Closed):
    """What one call outcome does: contact properties, activity properties, tasks."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(description="Human wording, available to templates as outcome.label.")
    when: WhenSpec | None = Field(None, description="Omitted only in the fallback bundle.")
    rank: int = Field(0, description="Higher outranks lower for `ranked` contact properties.")
    contact: dict[str, Scalar | ContactValue] = Field(default_factory=dict)
    activity: dict[str, Scalar] = Field(default_factory=dict, description="Overrides of activity.properties.")
    tasks: list[str] = Field(default_factory=list, description="Names from the top-level `tasks` section.")
    hold: bool = Field(False, description="Write nothing; hold the event for a human to review.")


class AlsoSpec(_Closed):
    """An additive rule: applies on top of the chosen bundle whenever its conditions hold."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: WhenSpec
    contact: dict[str, Scalar | ContactValue] = Field(default_factory=dict)
    activity: dict[str, Scalar] = Field(default_factory=dict)
    tasks: list[str] = Field(default_factory=list)


class TaskSpec(_Closed):
    """A follow-up task a bundle may create."""

    object: str
    due: Literal["callback", "next_business_day"] = Field(
        "callback", description="callback: the lead's requested time if usable; else next business day."
    )
    idempotency_property: str | None = Field(None, description="Searchable property for the task's key, if any.")
    properties: dict[str, Scalar]


class PrecedenceSpec(_Closed):
    """Rules that keep contact properties from moving backwards."""

    do_not_call_properties: list[str] = Field(
        default_factory=list, description="Sticky: only ever set to true, never cleared by the connector."
    )
    ranked_properties: list[str] = Field(
        default_factory=list, description="A lower-ranked outcome never overwrites a higher-ranked one."
    )
    default_rule: Literal["newest_call", "always"] = "newest_call"

    def is_do_not_call(self, name: str) -> bool:
        """Whether a property is one of `do_not_call_properties`, ignoring case (Salesforce's field names do)."""
        return name.lower() in {listed.lower() for listed in self.do_not_call_properties}


CLOSE_DEFAULTS: dict[str, tuple[str, str, str]] = {
    # (status property, closed status value, subject property) of a follow-up task, per CRM.
    # Salesforce: which Task.Status values close a task is each value's TaskStatus.IsClosed ("multiple task status
    # values can represent a closed Task"):
    # http://www.salesforce.com/us/developer/docs/api/Content/sforce_api_objects_taskstatus.htm
    # "Completed" as the closed value of the default picklist: UNVERIFIED for every org (closed_status overrides).
    "salesforce": ("Status", "Completed", "Subject"),
    # HubSpot: the tasks guide documents hs_task_status "either COMPLETED or NOT_STARTED" (its example also sends
    # WAITING): https://developers.hubspot.com/docs/api/crm/tasks . IN_PROGRESS and DEFERRED as further open
    # values of the default property: UNVERIFIED (the emulator's option list). COMPLETED is the closed one.
    "hubspot": ("hs_task_status", "COMPLETED", "hs_task_subject"),
}


class DoNotCallSpec(_Closed):
    """What do-not-call does to follow-up tasks: none is created for such a contact, open ones are closed."""

    skip_callbacks: bool = Field(
        True,
        description="Never create a `tasks` task for a contact whose do-not-call property is true "
        "(as the connector wrote it, or as the CRM says right before the write), nor write the contact fields of "
        "the outcome that asks for it (a callback due date, a status).",
    )
    close_open_callbacks: bool = Field(
        True, description="A do-not-call outcome closes the open tasks the connector created for the contact."
    )
    close_as: Literal["completed", "cancelled"] = Field(
        "completed",
        description="completed: closed status only; cancelled: closed status and the subject "
        "gets `cancelled_prefix` (neither CRM has a closed 'cancelled' status by default).",
    )
    status_property: str | None = Field(None, description="Task status property (default: Status / hs_task_status).")
    closed_status: str | None = Field(None, description="Closed status written (default: Completed / COMPLETED).")
    subject_property: str | None = Field(None, description="Subject property (default: Subject / hs_task_subject).")
    cancelled_prefix: str = Field("Cancelled (do not call): ", description="close_as cancelled: subject prefix.")

    def closing(self, crm: str) -> tuple[str, str, str] | None:
        """(status property, closed status, subject property), or None when neither given nor known for `crm`."""
        default = CLOSE_DEFAULTS.get(crm)
        status = self.status_property or (default[0] if default else None)
        closed = self.closed_status or (default[1] if default else None)
        subject = self.subject_property or (default[2] if default else None)
        if status is None or closed is None:
            return None
        return status, closed, subject or ""


class Mapping(_Closed):
    """A whole mapping file for one CRM."""

    version: Literal[1] = 1
    crm: str = Field(description="hubspot, salesforce, or a plugin sink's name.")
    constants: dict[str, Any] = Field(default_factory=dict, description="Free values for templates (constants.x).")
    contact: ContactSpec
    activity: ActivitySpec
    transcript: TranscriptSpec = Field(default_factory=TranscriptSpec)
    question_fields: QuestionFieldsSpec = Field(default_factory=QuestionFieldsSpec)
    contact_updates: dict[str, Scalar | ContactValue] = Field(
        default_factory=dict, description="Contact properties set after every call, whatever the outcome."
    )
    outcomes: list[BundleSpec] = Field(min_length=1, description="First bundle whose `when` holds wins.")
    fallback: BundleSpec = Field(description="Used when no bundle matches (e.g. an unknown end_reason).")
    also: list[AlsoSpec] = Field(default_factory=list)
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
    callback: CallbackPolicy = Field(default_factory=CallbackPolicy)
    precedence: PrecedenceSpec = Field(default_factory=PrecedenceSpec)
    do_not_call: DoNotCallSpec = Field(default_factory=DoNotCallSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        names = [b.name for b in self.outcomes] + [self.fallback.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"outcome names must be unique: {', '.join(duplicates)}")
        if self.fallback.when is not None:
            raise ValueError("the fallback bundle takes no `when`")
        for bundle in self.outcomes:
            if bundle.when is None:
                raise ValueError(f"outcome {bundle.name} needs a `when` (only the fallback has none)")
        for owner, tasks in [(b.name, b.tasks) for b in [*self.outcomes, self.fallback]] + [
            (a.name, a.tasks) for a in self.also
        ]:
            for task in tasks:
                if task not in self.tasks:
                    raise ValueError(f"{owner} names task {task!r}, which the `tasks` section does not define")
        keyed = any(t.idempotency_property for t in self.tasks.values())
        if self.do_not_call.close_open_callbacks and keyed and self.do_not_call.closing(self.crm) is None:
            raise ValueError(
                f"do_not_call.status_property and closed_status are needed for crm {self.crm!r} "
                "(or set do_not_call.close_open_callbacks: false)"
            )
        closing = self.do_not_call.closing(self.crm)
        if self.do_not_call.close_as == "cancelled" and keyed and not (closing and closing[2]):
            raise ValueError("do_not_call.close_as cancelled needs do_not_call.subject_property")
        return self
