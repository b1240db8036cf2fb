"""The settings of a `type: hubspot` sink section (declared by the sink type, validated through the registry)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from connector.sinks.settings import ON_MISSING_FIELD, SinkSettingsBase


class HubSpotSinkSettings(SinkSettingsBase):
    """A HubSpot portal reached through a private-app token."""

    type: Literal["hubspot"]
    access_token: SecretStr = Field(description="Private-app access token (Bearer).")

    @field_validator("access_token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().strip():
            raise ValueError("the access token is empty")
        return token

    base_url: str = Field("https://api.hubapi.com", description="API host; point it at the emulator or a proxy.")
    auto_create_question_properties: bool = Field(
        True,
        description="Create a missing `twox_q_<question>` contact property (text) the first time an answer "
        "to a new script question arrives (needs the crm.schemas.contacts.write scope).",
    )
    account_time_zone: str | None = Field(
        None,
        description="The portal's time zone (IANA name, e.g. America/New_York, as set in HubSpot's account "
        "defaults). HubSpot resets the daily API limit at midnight there: after a daily 429 the "
        "sink pauses until then. Unset: it looks again at the next full hour.",
    )

    @field_validator("account_time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Europe/Berlin)") from exc
        return value

    max_question_properties_per_event: int = Field(
        100,
        ge=0,
        le=1000,
        description="At most this many `twox_q_*` properties are created for one event (in "
        "batches of 100); answers beyond it are skipped and recorded, never fatal.",
    )
    on_missing_field: Literal["skip", "hold"] = Field("skip", description=ON_MISSING_FIELD)
