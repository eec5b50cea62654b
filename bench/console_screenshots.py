"""Screenshots of the console for the docs (benign generated images only): the queue and a case page.

    python bench/console_screenshots.py   # docs/img/console-queue.png, console-case.png, console-conversation.png

Starts the console on a free loopback port over a temporary data directory, opens a few cases by scanning
banked generated images and one by posting benign grooming-fixture chat lines, logs in a moderator and
a lead (TOTP) and drives Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.detectors.grooming.helpers import GROOMING_LINES, msg  # noqa: E402
from tests.helpers.console import browser_log_in  # noqa: E402
from tests.web.conftest import banked_case, person  # noqa: E402
from tests.web.live import chromium, live_console  # noqa: E402

from safeguard.detectors.grooming.service import GroomingService  # noqa: E402


def main() -> int:
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, live_console(Path(tmp)) as (base, engine):
        cases = [banked_case(engine, seed=s, user=f"user-{s}")[0] for s in range(7, 13)]
        mia = person(engine, "mia", "moderator")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 820})
            browser_log_in(page, base, mia)
            page.screenshot(path=str(out / "console-queue.png"), full_page=True)
            page.goto(f"{base}/console/cases/{cases[0]}")
            page.get_by_role("button", name="Claim").click()
            page.wait_for_url(f"**/console/cases/{cases[0]}")
            page.screenshot(path=str(out / "console-case.png"), full_page=True)
            # a grooming case (benign fixture lines) as a lead sees it: the conversation around the evidence
            grooming = GroomingService(engine)
            lines = [*GROOMING_LINES[:4], "gg", "what music do you like", *GROOMING_LINES[4:]]
            t0 = time.time() - 600
            for i, line in enumerate(lines):
                grooming.post("chat-42", [msg(i, line, t0=t0)])
            lea = person(engine, "lea", "lead")
            page = browser.new_page(viewport={"width": 1366, "height": 820})
            browser_log_in(page, base, lea)
            page.get_by_role("link", name="#7").click()  # the grooming case: opened after the six image cases
            page.wait_for_url("**/console/cases/7")
            page.get_by_role("list", name="Messages around m6, oldest first").first.scroll_into_view_if_needed()
            page.screenshot(path=str(out / "console-conversation.png"))
    print(f"wrote {out / 'console-queue.png'}, {out / 'console-case.png'} and {out / 'console-conversation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
