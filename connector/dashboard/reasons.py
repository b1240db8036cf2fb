"""Why something failed, in plain words for an operator, next to the raw message (always kept)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.hints import command

_GAVE_UP = re.compile(r"^gave up after (\d+) attempts: ", re.IGNORECASE)
_HUBSPOT_PROPERTY = re.compile(r"""[Pp]roperty\s+\\?["']?([A-Za-z0-9_]+)\\?["']?\s+does not exist""")
_SALESFORCE_FIELD = re.compile(r"""No such column '([A-Za-z0-9_]+)'|field[s]?\s*:?\s*\[?([A-Za-z0-9_]+__c)""")


@dataclass(frozen=True)
class Reason:
    """A sentence for people and the message the system recorded."""

    plain: str
    raw: str | None


# Codes the CRMs (HubSpot errors[].code/category, Salesforce errorCode) and our sinks use.
_BY_CODE: dict[str, str] = {
    "AMBIGUOUS_CONTACT": "Several CRM contacts share this phone number and the mapping says to hold such calls; "
    "merge the duplicates in the CRM (or change `contact.if_several`), then replay.",
    "INVALID_PHONE": "The call's phone number has no digits to search the CRM with.",
    "UNSUPPORTED_ACTION": "The sink cannot execute one of the planned actions; check the mapping's sink type.",
    "UNSUPPORTED_ASSOCIATION": "HubSpot cannot associate the call or task with this kind of record.",
    "INVALID_MAPPING": "The mapping names an object or field the CRM does not accept; fix the mapping, then replay.",
    "MALFORMED_ID": "The resolved contact id is not a valid CRM record id.",
    "NO_CONTACT": "No contact was resolved for this call, so there was nothing to update.",
    "INVALID_OPTION": "A value is not one of the options of a HubSpot enumeration property; add the option in "
    "HubSpot or change the mapping's value, then replay.",
    "INVALID_EMAIL": "HubSpot refused an email address in the contact fields.",
    "INVALID_OBJECT_IDS": "HubSpot does not know one of the record ids the call refers to (deleted or never existed).",
    "CONTACT_EXISTS": "HubSpot already has a contact with these details.",
    "REQUIRED_FIELD_MISSING": "Salesforce requires a field that the mapping does not fill; add it to the "
    "mapping, then replay.",
    "STRING_TOO_LONG": "A value is longer than the CRM field allows; shorten it with `truncate_to` in the "
    "mapping or `activity.limits`, then replay.",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "A value is not one of the picklist's allowed values in "
    "Salesforce; add it there or change the mapping, then replay.",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "A Salesforce validation rule refused the record; its message says which.",
    "INSUFFICIENT_ACCESS_OR_READONLY": "The Salesforce user may not write this record or field; grant the "
    "access, then replay.",
    "ENTITY_IS_DELETED": "The Salesforce record was deleted meanwhile.",
    "INVALID_CROSS_REFERENCE_KEY": "A Salesforce record id the call refers to does not exist.",
    "DUPLICATE_VALUE": "Salesforce refused a value that must be unique and already exists.",
    "VALIDATION_ERROR": "The CRM refused the data as invalid; its message says what it did not accept.",
}

_BY_KIND: dict[str, str] = {
    "AuthError": "The CRM rejected the credentials; the sink is paused until they work again (a probe checks "
    "them regularly). Nothing is lost: its deliveries wait.",
    "RateLimited": "The CRM's rate limit was reached; the whole sink waits out the window. Nothing fails.",
    "StaleContact": "The contact was deleted or merged in the CRM meanwhile; it is looked up again.",
    "TransientError": "The CRM could not be reached or answered with a temporary error.",
    "OutcomeUnknown": "The CRM's answer was lost; the next attempt looks the write up before repeating it.",
    "PermanentError": "The CRM refused the request; retrying the same data cannot help. Fix the cause, then replay.",
    "hold": "The mapping holds this call for a human review; replay it to release it.",
}


def delivery_reason(
    *,
    status: str | None,
    message: str | None,
    error_kind: str | None = None,
    crm_code: str | None = None,
    status_code: int | None = None,
    sink: str | None = None,
) -> Reason:
    """A dead, held or retried delivery's reason, from its last attempt's error kind and CRM code."""
    raw = message
    text = message or ""
    gave_up = _GAVE_UP.match(text)
    if error_kind == "mapping_error":
        return Reason(
            f"The mapping could not be applied: {text or 'no detail'} — fix the mapping line, then replay.", raw
        )
    if error_kind == "hold" or status == "held":
        why = f" ({text})" if text else ""
        return Reason(f"The mapping holds this call for a human review{why}; replay it to release it.", raw)
    if crm_code == "PROPERTY_DOESNT_EXIST":
        found = _HUBSPOT_PROPERTY.search(text)
        name = f" “{found.group(1)}”" if found else ""
        return Reason(
            f"HubSpot has no property{name}, which the mapping writes. Create it in HubSpot "
            f"(`{_setup(sink)}` creates the connector's own) or fix the mapping, then replay.",
            raw,
        )
    if crm_code in ("INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE"):
        found = _SALESFORCE_FIELD.search(text)
        name = f" “{found.group(1) or found.group(2)}”" if found else ""
        return Reason(
            f"Salesforce has no writable field{name} on this object. Create it (see "
            f"`{_setup(sink)}`) or remove it from the mapping, then replay.",
            raw,
        )
    if crm_code and crm_code in _BY_CODE:
        return Reason(_BY_CODE[crm_code], raw)
    if gave_up:
        return Reason(
            f"The CRM kept failing or could not be reached for {gave_up.group(1)} attempts over the "
            "whole retry schedule. Replay once it works again.",
            raw,
        )
    if status_code in (400, 422) and error_kind in (None, "PermanentError"):
        return Reason(
            "The CRM refused the data as invalid; its message says what it did not accept. Fix the "
            "mapping or the CRM's settings, then replay.",
            raw,
        )
    if error_kind in _BY_KIND:
        return Reason(_BY_KIND[error_kind], raw)
    if status == "dead":
        return Reason("Delivery stopped; the message below is what the CRM or the connector said.", raw)
    return Reason(text or "No error recorded.", raw)


def _setup(sink: str | None) -> str:
    """The complete crm-setup command for the sink (connector.hints: names this process's config file)."""
    return command("crm-setup", "--sink", sink) if sink else command("crm-setup")


def pause_reason(reason: str | None) -> Reason:
    """Why a sink is paused (the worker writes `credentials rejected: <CRM message>`)."""
    if reason and reason.lower().startswith("credentials rejected"):
        return Reason(_BY_KIND["AuthError"], reason)
    return Reason("The sink is paused" + (f": {reason}" if reason else "."), reason)


_QUARANTINE: dict[str, str] = {
    "empty_body": "The request had no body at all.",
    "invalid_encoding": "The body is not UTF-8 text, so it cannot be JSON.",
    "invalid_json": "The body is not valid JSON (a missing comma, a stray character, a cut-off body…).",
    "not_an_object": "The body is JSON but not an object ({…}); 2X always sends an object.",
    "not_a_call_record": "The JSON object has neither an `id` nor a `call`: it is not a 2X post-call webhook.",
    "too_deeply_nested": "The JSON is nested deeper than the connector accepts (a malformed or hostile body).",
    "body_too_large": "The body was larger than `receiver.max_body_bytes`; only its beginning was kept, so it "
    "cannot be replayed.",
    "unsupported_media_type": "The request's Content-Type was not JSON (or its charset not UTF-8).",
    "validation_failed": "Some fields have the wrong type or value; the list below names each one.",
    "normalization_failed": "The payload could not be normalized; the list below names the fields.",
    "id_conflict": "2X sent a different body under an id that was already accepted. The first body was kept "
    "and delivered; this one is kept here for a person to compare.",
}


def quarantine_reason(code: str, detail: str | None) -> Reason:
    """Why the receiver refused a body."""
    return Reason(_QUARANTINE.get(code, f"Refused ({code})."), detail)
