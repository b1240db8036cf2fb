"""The embedded delivery worker's process: `python -m connector.engine.process`, settings pickled on
stdin by `connector serve` (see connector.serving.DeliveryProcess).

A plain subprocess rather than multiprocessing: gunicorn's forked receiver workers would inherit a
multiprocessing child and try to join it at exit ("can only join a child process").
"""

from __future__ import annotations

import pickle
import signal
import sys

EXIT_CONFIG = 78
"""EX_CONFIG (sysexits.h): the configuration cannot work; the reason is on stderr and in the store.
(Not 3 or 4: older gunicorn masters halt on those exit codes of any child they reap.)"""


def main() -> int:
    from connector.config import Settings
    from connector.engine.worker import run_worker
    from connector.errors import ConnectorError

    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by our own parent process
    if not isinstance(settings, Settings):
        print("Error: the embedded worker got no settings", file=sys.stderr)
        return EXIT_CONFIG
    try:
        run_worker(settings, embedded=True)
    except ConnectorError as exc:
        print(f"Error: embedded delivery worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group, possibly while this process still imports (seconds on a busy
    # host): a KeyboardInterrupt traceback then. `serve` stops this worker with SIGTERM anyway, and once
    # running, the worker's own handlers take both signals over (connector.engine.worker._stop_on_signals).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main())
