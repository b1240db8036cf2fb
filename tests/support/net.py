"""Loopback networking for tests: free ports, and what counts as loopback (tests never reach further)."""

from __future__ import annotations

import socket

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def is_loopback(name: str | None) -> bool:
    """True for a host name or address on this machine."""
    return name in LOOPBACK_NAMES or str(name).startswith("127.")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for a child process that must be told its port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
