"""Instructions per webhook of the connector's receiver, counted by valgrind, so a change is measured exactly.

On a shared 2-core host the receiver's CPU time per request moves by a third from one run to the next (and
`bench/ingest.py`'s req/s with it); an instruction count does not. This script runs the receiver in process (the
app `bench/ingest_profile.py` builds, SQLite synchronous=NORMAL, logging on to /dev/null) under `valgrind
--tool=callgrind` twice: with a short and a long series of posts after the same warm-up. The difference divided
by the extra posts is what one webhook costs, start-up and warm-up cancelled out. It needs valgrind
(`apt-get install valgrind`) and takes a few minutes: valgrind runs Python about 50 times slower.

    python bench/ingest_instructions.py [--turns N] [--posts 300]

Instructions are not time (a cache miss costs more than an add), but the same code on the same inputs gives
the same count whatever else the host is doing, so two versions compare at the first run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ingest_profile  # bench/ is sys.path[0] when run as `python bench/ingest_instructions.py`

BASE_POSTS = 100
"""Posts in the shorter run: enough that both runs go through the same code paths once warmed up."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=None, help="transcript turns per body (default: the sample's 4)")
    parser.add_argument("--posts", type=int, default=300, help="extra posts in the longer run (default 300)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # posts, under valgrind
    args = parser.parse_args()
    if args.child is not None:
        return _posts_in_process(args.child, BASE_POSTS + args.posts, args.turns)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    counts = {posts: _instructions(posts, args.posts, args.turns) for posts in (BASE_POSTS, BASE_POSTS + args.posts)}
    per_webhook = (counts[BASE_POSTS + args.posts] - counts[BASE_POSTS]) / args.posts
    turns = f"{args.turns} transcript turns" if args.turns is not None else "the sample's 4 transcript turns"
    print(
        f"receiver in process, SQLite synchronous=NORMAL, {turns}: {per_webhook / 1e6:.3f} M instructions per "
        f"webhook ({counts[BASE_POSTS]:,} after {BASE_POSTS} posts, {counts[BASE_POSTS + args.posts]:,} after "
        f"{BASE_POSTS + args.posts})"
    )
    print(f"command: {shlex.join(['python', *sys.argv])}")
    return 0


def _instructions(posts: int, extra_posts: int, turns: int | None) -> int:
    """Run this script's child mode under callgrind; return the instructions it collected."""
    with tempfile.TemporaryDirectory(prefix="ingest-instructions-") as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            __file__,
            "--child",
            str(posts),
            "--posts",
            str(extra_posts),
            *(["--turns", str(turns)] if turns is not None else []),
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", finished.stderr)
    if finished.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed (exit {finished.returncode}):\n{finished.stderr[-2000:]}")
    return int(found.group(1))


def _posts_in_process(posts: int, built: int, turns: int | None) -> int:
    """The child: build the receiver on a fresh SQLite store, warm it up, post `posts` bodies, exit at once.

    Both runs build the same `built` bodies first, so that building them is not counted as the receiver's."""
    from connector.app import create_app
    from connector.config import parse_settings
    from connector.ledger import Ledger
    from connector.logs import setup_logging

    ingest_profile.TURNS = turns
    tmp = Path(tempfile.mkdtemp(prefix="ingest-instructions-child-"))
    document = {
        "receiver": {
            "path": ingest_profile.PATH,
            "auth": {"header": "Authorization", "tokens": [ingest_profile.TOKEN]},
        },
        "store": {"url": f"sqlite:///{tmp}/connector.db", "sqlite_synchronous": "NORMAL"},
        "sinks": {},
    }
    settings = parse_settings(document, source="<instructions>", base_dir=tmp)
    app = create_app(settings, ledger=Ledger.open(settings.store))
    setup_logging(settings.logging)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open until the process ends
    for handler in logging.getLogger("connector").handlers:
        handler.setStream(devnull)  # type: ignore[attr-defined]
    ingest_profile.warm_up(app, "warm")
    bodies = ingest_profile.bodies("measured", built)
    for body in bodies[:posts]:
        status = ingest_profile.post(app, body)
        if not status.startswith("202"):
            raise SystemExit(f"unexpected status {status}")
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)  # no interpreter teardown: the same in both runs, and valgrind is slow at it


if __name__ == "__main__":
    sys.exit(main())
