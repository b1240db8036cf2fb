"""The 2X sample webhook body: verbatim from their doc, and as a valid payload for tests and demos.

The verbatim text is kept because it is *not* valid JSON (missing comma after ``meta``, literal
``...`` lines); the receiver must answer it with a 400, and tests prove that against the real thing.
"""

from __future__ import annotations

import secrets
from typing import Any

VENDOR_SAMPLE_VERBATIM: str = """\
{
"id": 123,
"call": {
"end_reason": "transferred",
"telnyx_call_control_id": "v3:1234...",
"answered": true,
"duration": 33,
"call_direction":"outbound"
},
"question_fields":{
"case_number": "8057"
},
"message_left": "N",
"record_phone_number": "+1...",
"record_zip_code": "12345",
"record_first_name": "John",
"record_last_name": "Doe",
"record_timezone": "UTC-5",
"workflow_key": "123ABC",
"workflow_day": 3,
"workflow_call": 1,
"workflow_end": true,
"meta": {
"campaign": "fall2024"
}
"transcript": [
{
"role": "User",
"content": "Hello?"
},
{
"role": "Assistant",
"content": "Hi, is John available?"
},
...
]
}"""
"""The vendor's sample exactly as published; deliberately not parseable."""

SAMPLE_PHONE = "+12025550143"
"""A fictional (555-01xx) but possible US number, so the sample has a contact key."""


def sample_payload(
    event_id: int | str | None = None, *, end_reason: str = "call_transferred", **overrides: Any
) -> dict[str, Any]:
    """The vendor sample as a fresh, valid JSON object; ``overrides`` replace top-level keys.

    A random id by default, so tests that post several samples do not collide on idempotency.
    """
    payload: dict[str, Any] = {
        "id": secrets.randbelow(2**31 - 1) + 1 if event_id is None else event_id,
        "call": {
            "end_reason": end_reason,
            "telnyx_call_control_id": "v3:1234-sample-call-control-id",
            "answered": True,
            "duration": 33,
            "call_direction": "outbound",
        },
        "question_fields": {"case_number": "8057"},
        "message_left": "N",
        "record_phone_number": SAMPLE_PHONE,
        "record_zip_code": "12345",
        "record_first_name": "John",
        "record_last_name": "Doe",
        "record_timezone": "UTC-5",
        "workflow_key": "123ABC",
        "workflow_day": 3,
        "workflow_call": 1,
        "workflow_end": True,
        "meta": {"campaign": "fall2024"},
        "transcript": [
            {"role": "User", "content": "Hello?"},
            {"role": "Assistant", "content": "Hi, is John available?"},
            {"role": "User", "content": "Speaking."},
            {"role": "Assistant", "content": "Great, let me transfer you to a specialist now."},
        ],
    }
    payload.update(overrides)
    return payload
