"""Run test code in a forked child that may hang: a hung child fails the test instead of holding up pytest's exit."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

FORK = multiprocessing.get_context("fork")


def run_forked(target: Callable[[], None], timeout_s: float = 30.0) -> int | None:
    """Run `target` in a forked daemon child; its exit code, or None when it hung (it is then killed)."""
    process = FORK.Process(target=target, daemon=True)
    process.start()
    process.join(timeout_s)
    if process.exitcode is None:
        process.kill()
        process.join(5)
        return None
    return process.exitcode


def fork_queue() -> Any:
    """A queue a forked child can report through."""
    return FORK.Queue()
