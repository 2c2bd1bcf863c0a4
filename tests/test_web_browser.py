"""End to end in a real browser: two annotators label the loop's batches on the web page.

Debian's Chromium (/usr/bin/chromium) is driven by Playwright; no browser is downloaded. The
loop runs in a thread with a real SQLite label store and a real sqlite-backed MLflow; ann
answers with keyboard shortcuts, bob with clicks (and once says "unsure", then undoes it).
Every item text carries HTML that must stay text.
"""

import tempfile
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from alloop.config import parse_config
from alloop.experiment import build_loop
from alloop.store import LabelStore
from oracles.web import TokenStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAYLOAD = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")


def write_messages(path: Path) -> dict[str, str]:
    ham = ["lunch at noon", "meeting moved to friday", "see the attached notes", "call me later",
           "the report is ready", "thanks for the review", "dinner with the team", "draft agenda"]
    spam = ["win free money now", "cheap pills online", "claim your prize today",
            "you won a free cruise", "urgent wire transfer", "lowest price guaranteed",
            "free gift card inside", "act now limited offer"]
    rows = []
    for n in range(40):
        label = "ham" if n % 2 == 0 else "spam"
        words = (ham if label == "ham" else spam)[(n // 2) % 8]
        rows.append({"id": f"m{n:02d}", "text": f"{words} {PAYLOAD} <b>#{n}</b>", "label": label})
    pd.DataFrame(rows).to_csv(path, index=False)
    return {r["id"]: r["label"] for r in rows}


def test_two_annotators_label_through_the_page_while_the_loop_runs(tmp_path):
    from playwright.sync_api import sync_playwright

    data = tmp_path / "messages.csv"
    truth = write_messages(data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = parse_config({
        "name": "web-e2e", "seed": 0,
        "data": {"source": str(data), "target": "label", "text_column": "text", "id_column": "id"},
        "model": {"kind": "logistic", "C": 1.0, "auto_regularity": False},
        "strategy": {"name": "margin"},
        "loop": {"initial": 6, "batch_size": 4, "rounds": 1},
        "oracle": {"kind": "web", "annotators": ["ann", "bob"], "port": 0, "timeout": 90,
                   "tokens": str(tmp_path / "tokens.sqlite")},
        "store": {"path": str(tmp_path / "labels.sqlite")},
    })
    tokens = TokenStore(config.tokens_path())
    secret = {a: tokens.create(a) for a in ("ann", "bob")}
    loop = build_loop(config, tracking_uri=uri, progress=False)
    oracle = loop.oracle
    url = oracle.start()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = loop.run()
        except BaseException as exc:  # reported in the test's thread
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    seen: dict[str, list[str]] = {"ann": [], "bob": []}
    undone = False
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            pages = {}
            for who in ("ann", "bob"):
                page = browser.new_context().new_page()  # own cookies per annotator
                page.goto(f"{url}login#token={secret[who]}")  # the link fills the form in
                assert page.url == f"{url}login"  # the token left the address bar
                page.click("button[type=submit]")  # a POST: the person signs in
                page.wait_for_url(url)
                assert page.locator("#annotator").inner_text() == who
                pages[who] = page
            deadline = time.monotonic() + 120
            while runner.is_alive() and time.monotonic() < deadline:
                acted = False
                for who, page in pages.items():
                    page.wait_for_load_state()
                    main = page.locator("main")
                    if main.get_attribute("data-state") != "item":
                        continue
                    page.wait_for_selector("html[data-ready]")  # its script has run: keys work
                    item = page.locator("#item").get_attribute("data-item-id")
                    text = page.locator("#item-text").inner_text()
                    assert PAYLOAD in text  # shown as text ...
                    assert page.evaluate("window.pwned") is None  # ... and never run
                    assert page.locator("#item img").count() == 0
                    label = truth[item]
                    if who == "ann":  # keyboard: 1 ham, 2 spam
                        with page.expect_navigation():
                            page.keyboard.press("1" if label == "ham" else "2")
                    elif not undone:  # unsure, then undo with z, then the label
                        with page.expect_navigation():
                            page.get_by_role("button", name="unsure").click()
                        with page.expect_navigation():
                            page.keyboard.press("z")
                        assert "is open again" in page.locator("#notice").inner_text()
                        assert page.locator("#item").get_attribute("data-item-id") == item
                        with page.expect_navigation():
                            page.get_by_role("button", name=label).click()
                        undone = True
                    else:
                        with page.expect_navigation():
                            page.get_by_role("button", name=label).click()
                    assert page.locator("#error").count() == 0
                    seen[who].append(item)
                    acted = True
                if not acted:
                    time.sleep(0.2)  # the page polls for the next batch and reloads itself
            runner.join(timeout=60)
            # after the run, the pages wait; a late form post is refused, not stored
            assert pages["ann"].locator("main").get_attribute("data-state") in ("idle", "done")
            browser.close()
    finally:
        oracle.close()
        loop.store.close()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.stop_reason == "max_rounds"
    assert result.curve["labels"].tolist() == [6, 10]
    assert undone and seen["ann"] and seen["bob"]

    store = LabelStore(tmp_path / "labels.sqlite")
    answers = store.answers()
    store_labels = [(a.item_id, a.annotator, a.label) for a in answers if a.kind == "label"]
    assert sorted(store_labels) == sorted(
        (i, who, truth[i]) for who in seen for i in seen[who])  # every label, by its annotator
    assert [a.kind for a in answers].count("unsure") == 1 and len(answers) == 11
    assert store.current_labels() == {i: truth[i] for who in seen for i in seen[who]}
    for r in (0, 1):  # the page gave each item to the annotator the store says it assigned
        assigned = store.assignments(r)  # item → annotators
        assert {(a.item_id, a.annotator) for a in store.answers(round=r)} <= {
            (i, who) for i, people in assigned.items() for who in people}
    store.close()

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("web-e2e")
    rounds = client.search_runs([experiment.experiment_id], filter_string="tags.`alloop.round` = '1'")
    assert rounds[0].data.metrics["annotator.ann.answers"] >= 1
    assert rounds[0].data.metrics["annotator.bob.answers"] >= 1
    logged = []
    for r in ("0", "1"):
        run = client.search_runs([experiment.experiment_id],
                                 filter_string=f"tags.`alloop.round` = '{r}'")[0]
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.read_csv(client.download_artifacts(run.info.run_id, "queries.csv", tmp))
        logged += list(zip(frame["item_id"], frame["annotator"], frame["label"]))
    assert sorted(logged) == sorted(store_labels)
