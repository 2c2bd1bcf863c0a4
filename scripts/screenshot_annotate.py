"""Take the screenshot of the annotation page in docs/img/annotate-page.png.

A :class:`~oracles.web.WebOracle` on 127.0.0.1 shows a small batch of text items (with the
model's prediction and the query score) to one annotator; Debian's Chromium, driven by
Playwright, signs in with a fresh token, answers the first item and photographs the second.
No browser is downloaded. Run from the repository root::

    .venv/bin/python scripts/screenshot_annotate.py [--out docs/img/annotate-page.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

REVIEWS = [
    ("r-0412", "Arrived a day late, but the kettle itself is great: quiet, fast, and the "
               "handle stays cool.", "positive", 0.91),
    ("r-0977", "The strap broke after two weeks. Support answered quickly and sent a new one, "
               "which has held up so far. Not sure what to make of it <b>overall</b>.",
     "negative", 0.87),
    ("r-1203", "Does what it says.", "neutral", 0.42),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/annotate-page.png"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from oracles.base import Query
    from oracles.web import WebOracle

    with tempfile.TemporaryDirectory() as tmp:
        oracle = WebOracle(["ana"], tokens=Path(tmp) / "tokens.sqlite", port=0,
                           classes=["negative", "neutral", "positive"], announce=False)
        token = oracle.tokens.create("ana")
        url = oracle.start()
        queries = [Query(i, raw=text, prediction=guess, score=score, round=3)
                   for i, text, guess, score in REVIEWS]
        asking = threading.Thread(target=oracle.request, args=(queries,),
                                  kwargs={"on_answer": lambda answer: None}, daemon=True)
        asking.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 900, "height": 560},
                                        device_scale_factor=1)
                page.goto(f"{url}login?token={token}")
                page.wait_for_selector("html[data-ready]")
                with page.expect_navigation():
                    page.keyboard.press("3")  # the first review: positive
                page.wait_for_selector("html[data-ready]")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=False)
                browser.close()
        finally:
            oracle.cancel()
            asking.join(timeout=10)
            oracle.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
