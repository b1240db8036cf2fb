"""Named crash points for crash tests: the process kills itself with SIGKILL at a chosen point.

`CONNECTOR_CRASH_AT=after_crm_call:3` kills the worker the third time it reaches the point
`after_crm_call` — exactly what a `kill -9` at that moment would do, but deterministic. Unset (the
normal case) each point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "CONNECTOR_CRASH_AT"
_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if the environment asks for it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
