"""Settings every test builds on: one webhook token and a parsed config around a given store, so tests
never depend on a config file or on the developer's environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from connector.config import Settings, parse_settings

PG_ADMIN_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""A PostgreSQL server the tests may create and drop databases on (trust auth on loopback)."""

TOKEN = "test-token-" + "x" * 20


def make_settings(store_url: str, **sections: Any) -> Settings:
    """Settings for tests: a known token, the given store, optional extra sections."""
    document: dict[str, Any] = {
        "receiver": {"auth": {"header": "Authorization", "tokens": [TOKEN]}, "max_body_bytes": 64_000},
        "store": {"url": store_url},
        **sections,
    }
    return parse_settings(document, source="<test>", base_dir=Path("."), environ={})
