"""`crm_key`: an idempotency key that fits every CRM field it is written to, whatever the event id.

Keys are written to Salesforce `Task.CallObject` (255 characters, a string field:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm)
and HubSpot `hs_call_external_id` (a single-line text property: 65,536 characters through the CRM,
https://knowledge.hubspot.com/properties/property-field-types-in-hubspot), with suffixes such as
`:task:callback` appended, and to the ledger's action journal (200 characters). A key is therefore
kept to `max_len` (128) characters: short ids give `2x-<id>` unchanged; longer ones give
`2x-<first characters of the id>-<16 hex of its sha256>`, stable for the same id and distinct for
different ids.
"""

from __future__ import annotations

import hashlib
from typing import Any

KEY_MAX_LEN = 128
_HASH_CHARS = 16


def crm_key(value: Any, prefix: str = "2x-", max_len: int = KEY_MAX_LEN) -> str:
    """`prefix + value`, or its shortened, hashed form when longer than `max_len` characters."""
    text = str(value)
    whole = f"{prefix}{text}"
    if len(whole) <= max_len:
        return whole
    keep = max_len - len(prefix) - 1 - _HASH_CHARS
    if keep < 1:
        raise ValueError("crm_key: max_len leaves no room for the id; raise it or shorten the prefix")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{prefix}{text[:keep]}-{digest}"
