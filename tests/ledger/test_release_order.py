"""A dead worker's claims, given back, are claimed next: they keep their place at the head of the queue instead of
waiting behind the backlog that arrived meanwhile (bench/delivery.py measures the recovery in seconds)."""

from __future__ import annotations

import time

from connector.ledger import Ledger
from tests.support.delivery import ingest


def test_released_and_swept_claims_are_claimed_before_the_rest_of_the_backlog(ledger: Ledger) -> None:
    for i in range(12):
        ingest(ledger, 300 + i, record_phone_number=f"+1202555{2000 + i:04d}")
    dead = ledger.deliveries.claim("dead-worker", ["rec"], limit=3, lease_s=60)
    expired = ledger.deliveries.claim("gone-worker", ["rec"], limit=3, lease_s=0.01)
    time.sleep(0.05)
    for i in range(12, 20):  # the backlog grows meanwhile
        ingest(ledger, 300 + i, record_phone_number=f"+1202555{2000 + i:04d}")
    assert ledger.deliveries.release_claims_of(["dead-worker"]) == 3
    assert ledger.deliveries.sweep_expired() == 3
    again = ledger.deliveries.claim("survivor", ["rec"], limit=6, lease_s=60)
    assert {c.id for c in again} == {c.id for c in dead + expired}
