"""Fixtures of the sink tests that more than one module uses: a fresh CRM emulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.emulators.hubspot.server import HubSpotEmulator
from connector.emulators.salesforce.server import SalesforceEmulator
from tests.support.hubspot import seeded_portal


@pytest.fixture
def hubspot_emulator() -> Iterator[HubSpotEmulator]:
    """A fresh HubSpot portal, seeded like the HubSpot sink tests' (tests.support.hubspot.seeded_portal)."""
    with seeded_portal() as running:
        yield running


@pytest.fixture
def salesforce_emulator() -> Iterator[SalesforceEmulator]:
    """A fresh Salesforce org on the emulator."""
    with SalesforceEmulator() as running:
        yield running
