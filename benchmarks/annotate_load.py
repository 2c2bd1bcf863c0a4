"""Load on the web annotation page: 20 annotator clients post 1,000 answers while the loop runs.

The loop (a logistic GLM on 3,000 synthetic items, margin sampling, an initial batch of 200 and
four rounds of 200: 1,000 answers) runs in this process with a real SQLite label store and a
:class:`~oracles.web.WebOracle` on 127.0.0.1 (any free port), 20 annotators, one per item. A
second process runs 20 client threads, one per annotator, each with its own Bearer token and
HTTP connection: ask ``/api/next``, post the true label to ``/api/answer``, and after every
tenth answer post the same answer again (a double click) — which must be refused with 409.
When the loop has finished, the label store is checked: every acknowledged answer is there
(none lost), no (item, annotator) pair is stored twice and no item has two answers (none
duplicated).

Reported: answers acknowledged, duplicates refused, throughput (answers per second while a batch
was open, i.e. over the loop's summed ``oracle_seconds``, and over the whole run) and the p50 /
p95 / max latency of an answer post as the clients saw it (the answer is committed to SQLite,
``synchronous=FULL``, before the response). Run from the repository root::

    .venv/bin/python benchmarks/annotate_load.py --out benchmarks/results/annotate_load.md
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def client(url: str, token: str, truth: dict[str, int], results: mp.Queue, double_every: int) -> None:
    """One annotator: answer every item the page gives them until the run is over."""
    import httpx

    latencies: list[float] = []
    acked: list[str] = []
    refused_duplicates = 0
    errors: list[str] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as http:
        while True:
            state = http.get("/api/next").json()
            if state["state"] == "finished":
                break
            item = state["item"]
            if item is None:
                time.sleep(0.05)
                continue
            body = {"item_id": item["item_id"], "label": truth[item["item_id"]],
                    "batch": state["batch"]}
            t0 = time.perf_counter()
            r = http.post("/api/answer", json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 200:
                acked.append(item["item_id"])
                if len(acked) % double_every == 0:
                    again = http.post("/api/answer", json=body)
                    if again.status_code == 409:
                        refused_duplicates += 1
                    else:
                        errors.append(f"double post answered {again.status_code}")
            elif r.status_code != 409:  # 409: the batch closed under us (not expected here)
                errors.append(f"{r.status_code}: {r.text}")
    results.put({"acked": acked, "latencies": latencies, "duplicates": refused_duplicates,
                 "errors": errors})


def clients(url: str, tokens: dict[str, str], truth: dict[str, int], results: mp.Queue,
            double_every: int) -> None:
    """The second process: one thread per annotator."""
    threads = [threading.Thread(target=client, args=(url, tokens[a], truth, results, double_every))
               for a in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--initial", type=int, default=200)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--double-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from sklearn.datasets import make_classification

    from alloop import ActiveLoop, LoopSettings, Pool
    from alloop.models import LogisticGLM
    from alloop.store import LabelStore
    from oracles.web import WebOracle

    torch.set_num_threads(1)
    X, y = make_classification(n_samples=4000, n_features=10, n_informative=6, random_state=0)
    pool = Pool(X[:3000])
    truth = {i: int(v) for i, v in zip(pool.ids.tolist(), y[:3000])}
    ids = [f"ann{n:02d}" for n in range(args.annotators)]
    expected = args.initial + args.batch * args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        oracle = WebOracle(ids, tokens=Path(tmp) / "tokens.sqlite", port=0, classes=[0, 1],
                           timeout=600, announce=False)
        tokens = {a: oracle.tokens.create(a) for a in ids}
        store = LabelStore(Path(tmp) / "labels.sqlite")
        loop = ActiveLoop(
            pool,
            LogisticGLM(s=0.0),
            "margin",
            oracle,
            settings=LoopSettings(
                initial=args.initial, batch_size=args.batch, rounds=args.rounds, progress=False
            ),
            X_test=X[3000:],
            y_test=y[3000:],
            classes=[0, 1],
            store=store,
        )
        url = oracle.start()
        results: mp.Queue = mp.get_context("spawn").Queue()
        crowd = mp.get_context("spawn").Process(
            target=clients, args=(url, tokens, truth, results, args.double_every))
        crowd.start()
        t0 = time.perf_counter()
        result = loop.run()
        wall = time.perf_counter() - t0
        oracle.board.finish()  # the clients see "finished" and stop
        reports = [results.get(timeout=120) for _ in ids]
        crowd.join(timeout=60)
        oracle.close()
        stored = store.answers()
        chain = store.verify()  # None: every answer matches the hash chain
        store.close()

    acked = [i for r in reports for i in r["acked"]]
    latencies = np.array([x for r in reports for x in r["latencies"]])
    errors = [e for r in reports for e in r["errors"]]
    duplicates_refused = sum(r["duplicates"] for r in reports)
    pairs = [(a.item_id, a.annotator) for a in stored]
    lost = len(set(acked) - {a.item_id for a in stored})
    duplicated = len(pairs) - len(set(pairs))
    items_twice = len(stored) - len({a.item_id for a in stored})
    open_seconds = float(result.curve["oracle_seconds"].sum())
    wrong = sum(a.label != truth[a.item_id] for a in stored)
    lines = [
        "# Web annotation page under load",
        "",
        f"`.venv/bin/python benchmarks/annotate_load.py` — {args.annotators} annotator clients "
        f"(threads in a second process, one HTTP connection and Bearer token each) against the "
        f"page on 127.0.0.1 while the loop runs: {args.initial} + {args.rounds} × {args.batch} "
        f"= {expected} answers in {len(result.curve)} rounds; a real SQLite label store.",
        "",
        f"machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{mp.cpu_count()} CPU core(s) (shared with other work)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers acknowledged (200) | {len(acked)} |",
        f"| answers in the label store | {len(stored)} |",
        f"| lost (acknowledged, not stored) | {lost} |",
        f"| duplicated (same item and annotator stored twice) | {duplicated} |",
        f"| items with more than one answer | {items_twice} |",
        f"| double posts refused with 409 | {duplicates_refused} |",
        f"| wrong labels stored | {wrong} |",
        f"| hash chain | {'intact' if chain is None else f'broken at seq {chain[0]}'} |",
        f"| client errors | {len(errors)} |",
        f"| throughput while a batch was open | {len(acked) / open_seconds:.0f} answers/s "
        f"({open_seconds:.2f} s) |",
        f"| throughput over the whole run (fits included) | {len(acked) / wall:.0f} answers/s "
        f"({wall:.2f} s) |",
        f"| answer post latency p50 | {1e3 * np.percentile(latencies, 50):.1f} ms |",
        f"| answer post latency p95 | {1e3 * np.percentile(latencies, 95):.1f} ms |",
        f"| answer post latency max | {1e3 * latencies.max():.1f} ms |",
        f"| mean latency | {1e3 * statistics.fmean(latencies):.1f} ms |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if errors:
        print("errors:", *errors[:10], sep="\n  ")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    ok = len(acked) == len(stored) == expected and lost == duplicated == items_twice == 0
    ok = ok and chain is None
    if not ok or errors:
        sys.exit(f"FAILED: acknowledged {len(acked)}, stored {len(stored)}, expected {expected}, "
                 f"lost {lost}, duplicated {duplicated}, errors {len(errors)}")


if __name__ == "__main__":
    main()
