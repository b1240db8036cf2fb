"""Whether an address or URL is this machine: the dashboard's remote refusal and the sinks' links to an emulator."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else or unparseable."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def is_loopback_url(url: str) -> bool:
    """A URL whose host is localhost or a loopback address (an emulator on this machine, not a real CRM)."""
    host = urlsplit(url).hostname
    return host == "localhost" or is_loopback(host)
