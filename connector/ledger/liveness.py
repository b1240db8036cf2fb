"""Is a worker process still there? Its pid means something only where it was taken: same host and
same PID namespace (containers on one host share a hostname with host networking, not their pids)."""

from __future__ import annotations

import functools
import hashlib
import os
import socket


@functools.lru_cache(maxsize=1)
def host_key() -> str:
    """Stable id of this host and PID namespace: pids recorded under the same key are comparable."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "no-pid-namespace-info"
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:64]


def pid_is_gone(pid: int) -> bool:
    """True when no process has this pid here: the worker that recorded it is certainly dead.

    A pid that exists is *not* proof of life (pids are reused, e.g. a restarted container gets the
    same ones, and tests run several workers in one process): callers then rely on heartbeats.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # someone's process exists under another user: not provably gone
    return False
