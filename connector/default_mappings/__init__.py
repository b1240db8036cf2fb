"""The default mappings, shipped with the package (the repository's `mappings/` folder links here)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

KNOWN = ("hubspot", "salesforce")


def default_mapping_path(crm: str) -> Path:
    """Path of the packaged default mapping for a CRM type (hubspot or salesforce)."""
    if crm not in KNOWN:
        raise KeyError(f"no default mapping for {crm!r}; known: {', '.join(KNOWN)}")
    return Path(str(resources.files(__package__) / f"{crm}.yaml"))
