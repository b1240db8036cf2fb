"""When to try a failed delivery again: a validated schedule with jitter, honouring Retry-After."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SCHEDULE_S = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 3600, 7200, 7200, 14400, 14400, 14400, 14400, 21600]
"""About 29 hours in all: a CRM outage of a day loses nothing; then the delivery is dead-lettered."""


class RetryPolicy(BaseModel):
    """How a delivery that failed transiently is rescheduled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schedule_s: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE_S),
        description="Delay before retry n (seconds); past the end the delivery is dead-lettered.",
    )
    jitter: float = Field(0.2, ge=0, le=1, description="Each delay is scaled by a random factor in [1-j, 1+j].")
    quick_retries: int = Field(2, ge=0, le=5, description="Immediate retries inside one attempt (tenacity).")
    quick_wait_s: float = Field(0.5, ge=0, le=10, description="First wait between quick retries (doubles).")

    @field_validator("schedule_s")
    @classmethod
    def _positive(cls, schedule: list[float]) -> list[float]:
        if not schedule or any(step <= 0 for step in schedule):
            raise ValueError("the schedule needs at least one delay, each > 0")
        return schedule

    @property
    def max_attempts(self) -> int:
        """Attempts before dead-lettering: the first one plus one per scheduled retry."""
        return len(self.schedule_s) + 1

    def next_delay(
        self, attempt: int, retry_after: float | None = None, *, rng: random.Random | None = None
    ) -> float | None:
        """Seconds until the next try after failed attempt number `attempt` (1-based); None: give up.

        The larger of the jittered schedule step and the CRM's Retry-After wins.
        """
        if attempt >= self.max_attempts:
            return None
        step = self.schedule_s[attempt - 1]
        factor = 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(step * factor, retry_after or 0.0)
