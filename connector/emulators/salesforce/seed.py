"""Seed records: the people a sink must find by phone, with phones typed the way humans type them.

Salesforce stores Phone/MobilePhone verbatim (US-locale UI formats 10-digit numbers as ``(415) 555-1212``), so
the seed mixes formats on purpose: SOQL equality on E.164 misses them, SOSL ``IN PHONE FIELDS`` finds them.

* ``contact_john``: Phone ``(202) 555-0143`` — the connector's sample number ``+12025550143``.
* ``contact_jane``: MobilePhone ``415.555.0100``; ``lead_jane_converted`` is the Lead she was converted from
  (same number, ``IsConverted`` true) and must not match lookups that exclude converted leads.
* ``contact_ann``: Phone ``+1 212 555 0188``, ``DoNotCall`` true.
* ``lead_bob``: an open Lead, Phone ``(646) 555-0123``.
* ``account_acme``: the Account of the contacts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from connector.emulators.salesforce.store import Store


def _at(year: int, month: int, day: int, hour: int = 15) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=UTC)


def seed(store: Store) -> dict[str, str]:
    """Insert the seed records; returns their ids by seed name."""
    account, contact, lead = store.object("Account"), store.object("Contact"), store.object("Lead")
    assert account and contact and lead
    ids: dict[str, str] = {}
    ids["account_acme"] = store.insert(
        account,
        {"Name": "Acme Corporation", "Phone": "(202) 555-0100", "BillingPostalCode": "20001"},
        created=_at(2022, 9, 1),
    )["Id"]
    ids["contact_john"] = store.insert(
        contact,
        {
            "FirstName": "John",
            "LastName": "Doe",
            "Phone": "(202) 555-0143",
            "AccountId": ids["account_acme"],
            "MailingPostalCode": "12345",
            "LeadSource": "Web",
            "Email": "john.doe@example.com",
            "LastActivityDate": date(2024, 5, 10),
        },
        created=_at(2023, 3, 1),
    )["Id"]
    ids["contact_jane"] = store.insert(
        contact,
        {
            "FirstName": "Jane",
            "LastName": "Roe",
            "MobilePhone": "415.555.0100",
            "AccountId": ids["account_acme"],
            "MailingPostalCode": "94105",
            "LeadSource": "Phone Inquiry",
            "Email": "jane.roe@example.com",
            "LastActivityDate": date(2024, 9, 1),
        },
        created=_at(2023, 6, 15),
    )["Id"]
    ids["contact_ann"] = store.insert(
        contact,
        {
            "FirstName": "Ann",
            "LastName": "Smith",
            "Phone": "+1 212 555 0188",
            "AccountId": ids["account_acme"],
            "DoNotCall": True,
            "HasOptedOutOfEmail": True,
            "LastActivityDate": date(2024, 11, 15),
        },
        created=_at(2024, 1, 20),
    )["Id"]
    ids["lead_bob"] = store.insert(
        lead,
        {
            "FirstName": "Bob",
            "LastName": "Lee",
            "Company": "Lee Consulting",
            "Phone": "(646) 555-0123",
            "PostalCode": "10001",
            "Status": "Open - Not Contacted",
            "LeadSource": "Purchased List",
            "LastActivityDate": date(2024, 6, 3),
        },
        created=_at(2024, 2, 2),
    )["Id"]
    ids["lead_jane_converted"] = store.insert(
        lead,
        {
            "FirstName": "Jane",
            "LastName": "Roe",
            "Company": "Acme Corporation",
            "MobilePhone": "415.555.0100",
            "Status": "Closed - Converted",
            "LeadSource": "Phone Inquiry",
            "IsConverted": True,
            "ConvertedDate": date(2023, 6, 15),
            "ConvertedContactId": ids["contact_jane"],
            "ConvertedAccountId": ids["account_acme"],
        },
        created=_at(2023, 5, 30),
    )["Id"]
    return ids
