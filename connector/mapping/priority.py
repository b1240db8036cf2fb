"""Whether a call will set do-not-call, decided at the door so its deliveries jump the queue.

Cheap on purpose (no templates, no clock): it only asks which outcome and additive rules a mapping
chooses for the event and whether any of them sets a do-not-call property to true.
"""

from __future__ import annotations

from connector.mapping.conditions import facts_of, holds
from connector.mapping.loader import LoadedMapping
from connector.mapping.questions import answer_sets
from connector.mapping.schema import ContactValue
from connector.payload import CallEvent


def sets_do_not_call(event: CallEvent, mapping: LoadedMapping) -> bool:
    """True when the mapping's plan for this event will set a do-not-call property."""
    spec = mapping.spec
    dnc = spec.precedence.is_do_not_call
    facts = facts_of(event)
    bundle = next((b for b in spec.outcomes if holds(b.when, facts)), spec.fallback)
    sections = [bundle.contact] + [a.contact for a in spec.also if holds(a.when, facts)]
    by_outcome = any(
        dnc(prop) and (value.value if isinstance(value, ContactValue) else value) is True
        for section in sections
        for prop, value in section.items()
    )
    return by_outcome or any(
        answer_sets(event, mapping, name) for name, rule in spec.question_fields.map.items() if dnc(rule.property)
    )
