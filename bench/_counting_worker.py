"""`connector worker` that counts its store commits, for bench/_delivery_batch.py.

    python bench/_counting_worker.py COUNT_FILE worker --config connector.yaml

An SQLAlchemy `commit` listener on every engine of the process (the worker's and its rate gate's) counts committed
transactions; reads end in a rollback and are not counted. The count goes to COUNT_FILE every 0.2 s and at exit
(written to a temporary file and renamed, so a reader never sees half a number).

With `BENCH_PROFILE=DIR` in the environment the worker runs under cProfile and writes `DIR/worker-<pid>.prof` at
exit (`python -m pstats` or snakeviz to read it): where a worker's time goes on a backlog. With `BENCH_STAGES=DIR`
it writes `DIR/stages-<pid>.json` instead, the CPU time of each stage (bench/_stage_times.py prints them).
"""

from __future__ import annotations

import cProfile
import os
import sys
import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

_count = 0
_lock = threading.Lock()


def _committed(_connection: object) -> None:
    global _count
    with _lock:
        _count += 1


def _dump(path: Path) -> None:
    with _lock:
        value = _count
    temporary = path.with_suffix(".tmp")
    temporary.write_text(str(value))
    os.replace(temporary, path)


def _every(path: Path, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        _dump(path)


def main() -> None:
    path = Path(sys.argv[1])
    event.listen(Engine, "commit", _committed)
    stop = threading.Event()
    threading.Thread(target=_every, args=(path, stop), daemon=True).start()
    from connector.cli import main as connector_main

    stages_dir = os.environ.get("BENCH_STAGES")
    if stages_dir:
        import _stage_times

        _stage_times.install()
    profile_dir = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_dir else None
    try:
        if profiler is not None:
            profiler.enable()
        connector_main(sys.argv[2:], prog_name="connector")
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(Path(profile_dir or ".") / f"worker-{os.getpid()}.prof"))
        if stages_dir:
            _stage_times.dump(Path(stages_dir) / f"stages-{os.getpid()}.json")
        stop.set()
        _dump(path)


if __name__ == "__main__":
    main()
