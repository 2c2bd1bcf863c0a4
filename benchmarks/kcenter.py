"""k-center batch of 10 at 100,000 × 64 beside a softmax GLM fit on the same job, one run.

The job: 10 classes, 150 labeled rows (the k-center's initial centers and the fit's data),
the rest the pool. Interleaved in each repeat, each on the same data:

* the softmax fit (the yardstick);
* ``cold``: :func:`alloop.engine.kcenter.kcenter_greedy` from scratch, as a caller with only
  the features calls it (it computes the pool's distances to the 150 labeled rows itself);
* ``core-set round``: the same call with ``center_distance=`` the core-set strategy's scores,
  as a loop round with the core-set strategy makes it (the scores are the strategy's output,
  computed once outside the timing, as the round's score stage computes them);
* ``carried round``: a loop round under ``batch_rule: kcenter`` with another strategy: the
  distances carried from the previous round (140 labeled, untimed) are updated with the 10
  rows labeled since (:class:`alloop.loop.select.CenterDistances`), then the same call;
* ``before``: the plain greedy this module replaced (a copy kept below, :func:`before_greedy`),
  one product of the whole pool per pick.

Medians of ``--repeats``; all picks are checked equal. ``--memory-n`` then measures the peak
memory (tracemalloc, Python and numpy allocations) of one cold call and one core-set call at
that many rows, beyond the pool itself. ``--shapes`` times the cold call on other data (low
dimension, clusters, exact ties, sparse) beside the plain greedy and beside the lazy walk fed
the full distance pass. Prints markdown tables.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice .venv/bin/python benchmarks/kcenter.py
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp

import strategies
from alloop.data.pool import Pool
from alloop.engine.kcenter import kcenter_greedy, nearest_center_sq_distance
from alloop.loop.select import CenterDistances
from alloop.models import SoftmaxGLM


def before_greedy(X: np.ndarray, k: int, X_centers: np.ndarray) -> np.ndarray:
    """BEFORE (alloop up to c7a215b, dense rows only): the plain greedy, one pool pass a pick."""
    from sklearn.utils.extmath import row_norms

    sq_norms = row_norms(X, squared=True)
    dist = nearest_center_sq_distance(X, X_centers)
    chosen = np.empty(k, dtype=np.int64)
    for j in range(k):
        i = int(np.argmax(dist))
        chosen[j] = i
        c = X[i].toarray().ravel() if sp.issparse(X) else X[i]
        to_c = X @ c
        to_c *= -2.0
        to_c += sq_norms
        to_c += sq_norms[i]
        np.maximum(to_c, 0.0, out=to_c)
        np.minimum(dist, to_c, out=dist)
        dist[i] = -np.inf
    return chosen


def job(n: int, d: int, labeled: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, 10))
    X = rng.normal(size=(n, d))
    y = (X @ W + rng.gumbel(size=(n, 10))).argmax(axis=1)
    lab = rng.choice(n, labeled, replace=False)
    return X, lab, y


def carried_round(X: np.ndarray, lab: np.ndarray, k: int) -> tuple[Pool, CenterDistances]:
    """A pool whose carried distances are a round old: labeled ``lab[:-k]`` then, ``lab`` now."""
    pool = Pool(X)
    pool.add_labels(pool.ids[lab[:-k]], ["y"] * (len(lab) - k))
    carried = CenterDistances()
    carried.get(pool, pool.unlabeled_indices())
    pool.add_labels(pool.ids[lab[-k:]], ["y"] * k)
    return pool, carried


def timings(args: argparse.Namespace) -> None:
    X, lab, y = job(args.n, args.d, args.labeled)
    pool_pos = np.setdiff1d(np.arange(args.n), lab)
    Xp, Xl, yl = X[pool_pos], X[lab], y[lab]
    scores = strategies.get("coreset").score(None, Xp, X_labeled=Xl)
    state: dict[str, tuple[Pool, CenterDistances]] = {}

    def carried_call() -> np.ndarray:
        pool, carried = state["round"]
        hint = carried.get(pool, pool_pos, Xp)
        return kcenter_greedy(Xp, args.k, Xl, scores=scores, center_distance=hint)

    runs = {
        "cold (150 labeled centers from scratch)": lambda: kcenter_greedy(Xp, args.k, Xl),
        "core-set round (its scores handed over)":
            lambda: kcenter_greedy(Xp, args.k, Xl, scores=scores, center_distance=scores),
        "carried round (10 new labeled rows)": carried_call,
        "before: plain greedy, cold": lambda: before_greedy(Xp, args.k, Xl),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    fit_s: list[float] = []
    picks: dict[str, list[int]] = {}
    for _ in range(args.repeats):
        t = time.perf_counter()
        SoftmaxGLM().fit(Xl, yl)
        fit_s.append(time.perf_counter() - t)
        state["round"] = carried_round(X, lab, args.k)  # untimed: the previous round's state
        for name, call in runs.items():
            t = time.perf_counter()
            got = call()
            seconds[name].append(time.perf_counter() - t)
            picks[name] = got.tolist()
    assert len({tuple(p) for p in picks.values()}) == 1, picks  # same batch, every variant
    f = float(np.median(fit_s))
    print(f"{args.n} × {args.d}, {args.labeled} labeled, k = {args.k}; medians of "
          f"{args.repeats}; softmax fit {f:.4f} s; same picks in every variant\n")
    print("| k-center | s | ÷ softmax fit |\n|---|---|---|")
    for name, s in seconds.items():
        c = float(np.median(s))
        print(f"| {name} | {c:.4f} | **{c / f:.2f}×** |")


def memory(args: argparse.Namespace) -> None:
    X, lab, _ = job(args.memory_n, args.d, args.labeled, seed=1)
    Xp, Xl = X[np.setdiff1d(np.arange(args.memory_n), lab)], X[lab]
    del X
    scores = np.sqrt(nearest_center_sq_distance(Xp, Xl))
    print(f"\n{args.memory_n:,} × {args.d} pool ({Xp.nbytes / 1e6:.0f} MB), {args.labeled} "
          "labeled, k = 10: peak memory beyond the pool (tracemalloc)\n")
    print("| k-center | s | peak MB | peak ÷ pool-length float64 vector |\n|---|---|---|---|")
    for name, hint in (("cold", None), ("core-set round", scores)):
        tracemalloc.start()
        t = time.perf_counter()
        try:
            kcenter_greedy(Xp, 10, Xl, center_distance=hint)
            s = time.perf_counter() - t
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        print(f"| {name} | {s:.3f} | {peak / 1e6:.1f} | {peak / (8 * len(Xp)):.1f} |")


def shapes(repeats: int) -> None:
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    digits = load_digits().data
    data = {
        "Gaussian 100k × 64": rng.normal(size=(100_000, 64)),
        "uniform 100k × 2": rng.uniform(size=(100_000, 2)),
        "integer grid {0,1,2}⁴, 100k (exact ties)": rng.integers(0, 3, (100_000, 4)).astype(float),
        "digits × 55 + noise 0.5 (clusters), 98,835 × 64":
            np.tile(digits, (55, 1)) + rng.normal(size=(1797 * 55, 64)) * 0.5,
        "all rows equal, 100k × 64": np.ones((100_000, 64)),
        "sparse 100k × 20k, 0.2 % filled":
            sp.random(100_000, 20_000, density=0.002, format="csr", random_state=0),
    }
    print(f"\ncold call, 150 labeled, k = 10, medians of {repeats}, interleaved; same picks in "
          "every column\n")
    print("| data | before s | full pass + lazy walk s | cold call s |\n|---|---|---|---|")
    for name, X in data.items():
        lab = rng.choice(X.shape[0], 150, replace=False)
        Xp, Xl = X[np.setdiff1d(np.arange(X.shape[0]), lab)], X[lab]
        calls = {
            "before": lambda Xp=Xp, Xl=Xl: before_greedy(Xp, 10, Xl),
            "full": lambda Xp=Xp, Xl=Xl: kcenter_greedy(
                Xp, 10, Xl, center_distance=np.sqrt(nearest_center_sq_distance(Xp, Xl))),
            "cold": lambda Xp=Xp, Xl=Xl: kcenter_greedy(Xp, 10, Xl),
        }
        seconds: dict[str, list[float]] = {c: [] for c in calls}
        picks = set()
        for _ in range(repeats):
            for c, call in calls.items():
                t = time.perf_counter()
                picks.add(tuple(call().tolist()))
                seconds[c].append(time.perf_counter() - t)
        assert len(picks) == 1, name
        row = " | ".join(f"{np.median(seconds[c]):.3f}" for c in calls)
        print(f"| {name} | {row} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--labeled", type=int, default=150)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--memory-n", type=int, default=1_000_000, help="0: skip the memory check")
    ap.add_argument("--shapes", action="store_true", help="also time other data shapes")
    args = ap.parse_args()
    timings(args)
    if args.memory_n:
        memory(args)
    if args.shapes:
        shapes(args.repeats)


if __name__ == "__main__":
    main()
