"""Turns one normalized event and one mapping into a Plan. Pure: no I/O, no clock, no environment.

`call_time` is passed in (the ledger's receive time, since 2X sends no call timestamp), so the
same event and mapping always give the same plan. A field whose template fails for this call (a
`meta` key it lacks) is left out with a plan warning naming the file, line and error, and the rest
is delivered. What cannot be left out (the activity's key, a do-not-call value, a value over a
limit that says `fail`) is a MappingError naming the same; the event stays stored and replayable.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from connector.errors import MappingError, PermanentError
from connector.keys import crm_key
from connector.mapping.callback import CallbackDue, callback_due
from connector.mapping.conditions import facts_of, holds
from connector.mapping.context import template_context
from connector.mapping.filters import truncate_to
from connector.mapping.html_cut import looks_like_html, truncate_html
from connector.mapping.loader import LoadedMapping
from connector.mapping.questions import question_values
from connector.mapping.schema import AlsoSpec, BundleSpec, ContactValue
from connector.payload import CallEvent
from connector.plan import (
    CloseCallbacks,
    CreateActivity,
    CreateTask,
    FieldUpdate,
    HoldForReview,
    MatchById,
    MatchByPhone,
    OutcomeSummary,
    Plan,
    ResolveContact,
    UpdateContact,
    contact_action_key,
)


def plan_event(event: CallEvent, mapping: LoadedMapping, *, sink: str, call_time: datetime) -> Plan:
    """The ordered CRM actions this event causes in one sink.

    Raises:
        MappingError: a template or value cannot be computed for this event.
    """
    if call_time.tzinfo is None:
        raise ValueError("call_time must be timezone-aware")
    spec = mapping.spec
    bundle, bundle_path, matched_by = _choose_bundle(event, mapping)
    also = [(f"also[{i}]", a) for i, a in enumerate(spec.also) if holds(a.when, facts_of(event))]
    zone = event.record.timezone.tzinfo() or ZoneInfo(spec.callback.fallback_timezone)
    warnings: list[str] = []
    if event.record.timezone.tzinfo() is None:
        warnings.append(
            f"lead timezone unknown ({event.record.timezone.raw!r}); using {spec.callback.fallback_timezone}"
        )
    context = template_context(event, mapping.spec, bundle, call_time, zone)
    task_names = list(dict.fromkeys(bundle.tasks + [t for _, a in also for t in a.tasks]))
    dues = {name: _due(event, mapping, name, call_time, zone) for name in task_names}
    if dues:
        context["callback"] = next(iter(dues.values())).model_dump()
    summary = OutcomeSummary(
        bundle=bundle.name,
        rank=bundle.rank,
        end_reason=event.call.end_reason.value,
        failure_reason=event.call.failure_reason.value,
        matched_by=matched_by,
        also=[a.name for _, a in also],
    )
    prefix = crm_key(event.id)  # "2x-<id>"; bounded for long ids (connector.keys)
    resolve = _resolve_contact(event, mapping, context, prefix, warnings)
    if bundle.hold:
        actions: list[Any] = [HoldForReview(key=f"{prefix}:hold", reason=f"outcome {bundle.name} is held for review")]
        return _plan(event, mapping, sink, call_time, summary, actions, warnings)
    if not resolve.match and spec.contact.if_no_phone == "hold":
        reason = "no usable phone number and no CRM id to find the contact by (contact.if_no_phone: hold)"
        return _plan(
            event, mapping, sink, call_time, summary, [HoldForReview(key=f"{prefix}:hold", reason=reason)], warnings
        )
    actions = [resolve, _activity(mapping, bundle_path, bundle, also, context, prefix, warnings)]
    fields = _contact_fields(event, mapping, bundle_path, bundle, also, context, call_time, warnings)
    sets_do_not_call = any(f.rule == "sticky_true" for f in fields)
    guarded = mapping.spec.do_not_call.skip_callbacks and not sets_do_not_call and bool(dues)
    if fields:
        withheld = _callback_fields(mapping, bundle, also, fields) if guarded else []
        actions.append(
            UpdateContact(
                key=f"{prefix}:contact-update",
                fields=fields,
                unless_do_not_call=list(mapping.spec.precedence.do_not_call_properties) if withheld else [],
                withheld_if_do_not_call=withheld,
            )
        )
    if sets_do_not_call:
        actions += _close_callbacks(mapping, prefix)
    for name, due in dues.items():
        if sets_do_not_call and mapping.spec.do_not_call.skip_callbacks:
            warnings.append(f"task {name} not planned: this call sets do-not-call")
            continue
        actions.append(_task(mapping, name, due, context, prefix, warnings))
    return _plan(event, mapping, sink, call_time, summary, actions, warnings)


def delivery_plan(
    saved: str | None, event: dict[str, Any] | None, mapping: LoadedMapping | None, *, sink: str, event_id: str
) -> Plan:
    """A delivery's plan: the one saved at its first attempt (JSON), else planned now from its stored event row
    (``normalized``, ``received_at``). PermanentError when the event is gone or its content was purged by retention
    (or the sink has no mapping any more); MappingError as `plan_event`."""
    if saved:
        return Plan.model_validate_json(saved)
    if event is None:
        raise PermanentError(f"event {event_id} is missing from the ledger")
    if event.get("purged_at") is not None:
        raise PermanentError(f"event {event_id}: its content was purged by retention; there is nothing to deliver")
    if mapping is None:
        raise PermanentError(f"sink {sink} is not configured")
    normalized = CallEvent.model_validate_json(event["normalized"])
    return plan_event(normalized, mapping, sink=sink, call_time=event["received_at"])


def _plan(
    event: CallEvent,
    mapping: LoadedMapping,
    sink: str,
    call_time: datetime,
    summary: OutcomeSummary,
    actions: list[Any],
    warnings: list[str],
) -> Plan:
    do_not_call = any(f.rule == "sticky_true" for a in actions if isinstance(a, UpdateContact) for f in a.fields)
    return Plan(
        event_id=event.id,
        sink=sink,
        crm=mapping.spec.crm,
        mapping=mapping.source,
        mapping_sha256=mapping.sha256,
        call_time=call_time,
        outcome=summary,
        do_not_call=do_not_call,
        actions=actions,
        warnings=warnings,
    )


def _choose_bundle(event: CallEvent, mapping: LoadedMapping) -> tuple[BundleSpec, str, str]:
    facts = facts_of(event)
    for index, bundle in enumerate(mapping.spec.outcomes):
        if holds(bundle.when, facts):
            given = bundle.when.model_dump(exclude_none=True)
            return bundle, f"outcomes[{index}]", ", ".join(f"{k}={v}" for k, v in given.items())
    return mapping.spec.fallback, "fallback", "fallback"


_LEFT_OUT = object()


def _render_or_leave_out(
    mapping: LoadedMapping, path: str, prop: str, context: dict[str, Any], warnings: list[str]
) -> Any:
    """The field's value, or _LEFT_OUT when its template fails for this call (a `meta` key this call lacks): one
    optional field must not cost the call its log, its do-not-call or its callback task. The plan's warning names
    the field and the template's error; the rest of the call is delivered."""
    try:
        return mapping.value(path).render(context)
    except MappingError as exc:
        warnings.append(f"{prop} left out: its template failed for this call: {exc}")
        return _LEFT_OUT


def _render_all(
    mapping: LoadedMapping,
    paths: dict[str, str],
    context: dict[str, Any],
    warnings: list[str],
    limits: bool = True,
) -> dict[str, Any]:
    """Render {property: yaml path}; drop None and fields whose template fails for this call; apply field limits."""
    rendered: dict[str, Any] = {}
    for prop, path in paths.items():
        value = _render_or_leave_out(mapping, path, prop, context, warnings)
        if value is None or value is _LEFT_OUT:
            continue
        if not isinstance(value, (str, int, float, bool)):
            value = str(value)
        rendered[prop] = _limited(mapping, prop, value, path) if limits else value
    return rendered


def _limited(mapping: LoadedMapping, prop: str, value: Any, path: str) -> Any:
    limit = mapping.spec.activity.limits.get(prop)
    if limit is None or not isinstance(value, str) or len(value) <= limit.max_length:
        return value
    if limit.on_too_long == "fail":
        raise MappingError(
            f"{mapping.where(path)}: value of {prop} is {len(value)} characters, over its limit of {limit.max_length} "
            "(activity.limits says fail)"
        )
    if mapping.spec.transcript.format == "html" and looks_like_html(value):
        return truncate_html(value, limit.max_length)  # on a tag boundary, tags closed, the marker its own <p>
    return truncate_to(value, limit.max_length)


def _resolve_contact(
    event: CallEvent, mapping: LoadedMapping, context: dict[str, Any], prefix: str, warnings: list[str]
) -> ResolveContact:
    spec = mapping.spec.contact
    rules: list[Any] = []
    for rule in spec.match:
        if rule.id_from is not None:
            found = _lookup(context["event"], rule.id_from)
            if found not in (None, "") and not isinstance(found, (dict, list, bool)):
                rules.append(MatchById(object=rule.object or spec.object, id=str(found).strip(), source=rule.id_from))
        elif event.record.phone.e164:
            rules.append(
                MatchByPhone(
                    objects=rule.objects or [rule.object or spec.object],
                    fields=rule.phone_fields or [],
                    e164=event.record.phone.e164,
                )
            )
        else:
            warnings.append("no usable phone number: phone matching skipped")
    create = _render_all(mapping, {p: f"contact.create.{p}" for p in spec.create}, context, warnings, limits=False)
    return ResolveContact(
        key=contact_action_key(event.id),
        match=rules,
        on_no_match="skip" if not rules and spec.if_no_phone == "skip" else spec.if_no_match,
        create_object=spec.create_object or spec.object,
        create_properties={k: v for k, v in create.items() if v != ""},
        on_multiple=spec.if_several,
    )


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _activity(
    mapping: LoadedMapping,
    bundle_path: str,
    bundle: BundleSpec,
    also: list[tuple[str, AlsoSpec]],
    context: dict[str, Any],
    prefix: str,
    warnings: list[str],
) -> CreateActivity:
    spec = mapping.spec.activity
    paths = {p: f"activity.properties.{p}" for p in spec.properties}
    paths.update({p: f"{bundle_path}.activity.{p}" for p in bundle.activity})
    for also_path, rule in also:
        paths.update({p: f"{also_path}.activity.{p}" for p in rule.activity})
    key = str(mapping.value("activity.idempotency_key").render(context))
    properties = _render_all(mapping, paths, context, warnings)
    properties[spec.idempotency_property] = key
    return CreateActivity(
        key=f"{prefix}:activity",
        object=spec.object,
        idempotency_property=spec.idempotency_property,
        idempotency_key=key,
        properties=properties,
    )


def _contact_fields(
    event: CallEvent,
    mapping: LoadedMapping,
    bundle_path: str,
    bundle: BundleSpec,
    also: list[tuple[str, AlsoSpec]],
    context: dict[str, Any],
    call_time: datetime,
    warnings: list[str],
) -> list[FieldUpdate]:
    """Contact properties in precedence order: every-call updates, the bundle, additive rules, answers."""
    precedence = mapping.spec.precedence
    sources: list[tuple[str, dict[str, Any]]] = [
        ("contact_updates", mapping.spec.contact_updates),
        (f"{bundle_path}.contact", bundle.contact),
    ]
    sources += [(f"{p}.contact", a.contact) for p, a in also]
    updates: dict[str, FieldUpdate] = {}
    for base, values in sources:
        for prop, declared in values.items():
            sticky = precedence.is_do_not_call(prop)
            if sticky:  # never left out: a failing template stops the call, visibly
                value = mapping.value(f"{base}.{prop}").render(context)
            else:
                value = _render_or_leave_out(mapping, f"{base}.{prop}", prop, context, warnings)
                if value is _LEFT_OUT:
                    continue
            if sticky:
                rule = "sticky_true"
            elif isinstance(declared, ContactValue) and declared.rule:
                rule = declared.rule
            elif prop in precedence.ranked_properties:
                rule = "ranked"
            else:
                rule = precedence.default_rule
            if rule == "sticky_true" and value is not True:
                warnings.append(f"{prop}: do-not-call property not set (value was not true)")
                continue
            objects = declared.objects if isinstance(declared, ContactValue) else None
            updates[prop] = FieldUpdate(
                property=prop, value=_scalar(value), rule=rule, rank=bundle.rank, call_time=call_time, objects=objects
            )
    for prop, value in question_values(event, mapping, warnings).items():
        if prop in updates:
            continue
        rule = mapping.spec.question_fields.rule
        if precedence.is_do_not_call(prop):
            # An answer may set do-not-call ("opt out? yes"); "no" must never clear what the lead or a rep set.
            if value is not True:
                warnings.append(f"{prop}: do-not-call property not set by a question (the answer was not true)")
                continue
            rule = "sticky_true"
        updates[prop] = FieldUpdate(property=prop, value=value, rule=rule, rank=bundle.rank, call_time=call_time)
    return list(updates.values())


def _callback_fields(
    mapping: LoadedMapping, bundle: BundleSpec, also: list[tuple[str, AlsoSpec]], fields: list[FieldUpdate]
) -> list[str]:
    """The contact fields set by the bundles that ask for a callback task (the outcome's status, its due date): a
    do-not-call contact gets neither the task nor these (`do_not_call.skip_callbacks`). Every-call fields, answers,
    other rules and do-not-call properties themselves are not among them."""
    declared = [bundle.contact] if bundle.tasks else []
    declared += [a.contact for _, a in also if a.tasks]
    names = {prop for values in declared for prop in values}
    return [
        f.property for f in fields if f.property in names and not mapping.spec.precedence.is_do_not_call(f.property)
    ]


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _due(event: CallEvent, mapping: LoadedMapping, name: str, call_time: datetime, zone: tzinfo) -> CallbackDue:
    """When a task is due: the lead's requested time when usable, else the next business day."""
    policy = mapping.spec.callback
    requested = None
    if mapping.spec.tasks[name].due == "callback" and policy.question_field:
        answer = event.question_fields.get(policy.question_field)
        requested = answer if isinstance(answer, str) else None
    due = callback_due(call_time, zone, requested, policy)
    if event.record.timezone.tzinfo() is None:  # the rep calling back should know the hour is a guess
        due = due.model_copy(
            update={"note": f"{due.note} (the lead's time zone was not known: {policy.fallback_timezone} assumed)"}
        )
    return due


def _task(
    mapping: LoadedMapping, name: str, due: CallbackDue, context: dict[str, Any], prefix: str, warnings: list[str]
) -> CreateTask:
    task = mapping.spec.tasks[name]
    task_context = {**context, "callback": due.model_dump(), "task": {"name": name, **due.model_dump()}}
    paths = {p: f"tasks.{name}.properties.{p}" for p in task.properties}
    properties = _render_all(mapping, paths, task_context, warnings)
    key = f"{prefix}:task:{name}"
    if task.idempotency_property:
        properties[task.idempotency_property] = key
    guard = mapping.spec.precedence.do_not_call_properties if mapping.spec.do_not_call.skip_callbacks else []
    return CreateTask(
        key=key,
        object=task.object,
        idempotency_property=task.idempotency_property,
        idempotency_key=key,
        due=due.due,
        due_local_date=due.local_date.isoformat(),
        properties=properties,
        unless_do_not_call=list(guard),
    )


def _close_callbacks(mapping: LoadedMapping, prefix: str) -> list[CloseCallbacks]:
    """One close action per task object and key property the mapping's tasks use (the default: one)."""
    rule = mapping.spec.do_not_call
    closing = rule.closing(mapping.spec.crm)
    if not rule.close_open_callbacks or closing is None:
        return []
    status, closed, subject = closing
    targets = list(
        dict.fromkeys((t.object, t.idempotency_property) for t in mapping.spec.tasks.values() if t.idempotency_property)
    )
    cancelled = rule.close_as == "cancelled"
    return [
        CloseCallbacks(
            key=f"{prefix}:close-callbacks" + (f":{index}" if index else ""),
            object=task_object,
            idempotency_property=key_property,
            close_as=rule.close_as,
            set_properties={status: closed},
            subject_property=subject if cancelled else None,
            subject_prefix=rule.cancelled_prefix if cancelled else None,
        )
        for index, (task_object, key_property) in enumerate(targets)
    ]
