"""Screenshots of the dashboard's main pages for the README: `python -m tests.support.screenshots`.

Builds realistic sandbox data (tests/support/sandbox_data.py: the CRM emulators, a real worker,
a dead letter, quarantined bodies, a paused sink), serves the real app on loopback and saves PNGs
taken by headless Chromium to docs/screenshots/ (or --out DIR). Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.dashboard import browser_page, chromium_missing_reason, dashboard_app
from tests.support.serving import serving

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PAGES = ("overview", "events", "event", "dead", "quarantine", "preview")


def _shoot(page: Any, path: Path, *, full_page: bool = True) -> None:
    page.wait_for_load_state("load")
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")


def take(out: Path) -> list[Path]:
    """Render every main page and save it under `out`; returns the files written."""
    from tests.support.sandbox_data import build

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="dashboard-shots-") as workdir:
        sandbox = build(Path(workdir))
        try:
            app = dashboard_app(sandbox.settings, sandbox.ledger)
            with serving(app) as base, browser_page(width=1280, height=800) as page:
                root = base + "/dashboard"
                shots = {
                    "overview": root + "/",
                    "events": root + "/events",
                    "event": f"{root}/events/{sandbox.delivered_event}",
                    "dead": root + "/dead",
                    "quarantine": root + "/quarantine",
                }
                for name, url in shots.items():
                    page.goto(url)
                    if name == "event":
                        page.locator("#delivery-hubspot details > summary").first.click()
                    written.append(out / f"{name}.png")
                    _shoot(page, written[-1])
                page.goto(root + "/preview")
                page.select_option("select[name=sink]", "hubspot")
                page.click("text=Show the plan")
                page.wait_for_selector("#plan-hubspot")
                written.append(out / "preview.png")
                _shoot(page, written[-1])
        finally:
            sandbox.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNG files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    missing = chromium_missing_reason()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 2
    for path in take(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
