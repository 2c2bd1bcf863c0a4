"""k-center batch of 10 at 100,000 × 64 beside a softmax GLM fit on the same job, one run.

The job: 10 classes, 150 labeled rows (the k-center's initial centers and the fit's data),
the rest the pool. Medians of ``--repeats`` interleaved runs; prints a markdown table.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice .venv/bin/python benchmarks/kcenter.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alloop.engine.select import kcenter_greedy
from alloop.models import SoftmaxGLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--labeled", type=int, default=150)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    W = rng.normal(size=(args.d, 10))
    X = rng.normal(size=(args.n, args.d))
    y = (X @ W + rng.gumbel(size=(args.n, 10))).argmax(axis=1)
    lab = rng.choice(args.n, args.labeled, replace=False)
    pool = np.setdiff1d(np.arange(args.n), lab)
    Xp, Xl, yl = X[pool], X[lab], y[lab]
    fit_s, kc_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        SoftmaxGLM().fit(Xl, yl)
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        kcenter_greedy(Xp, args.k, Xl)
        kc_s.append(time.perf_counter() - t)
    f, c = float(np.median(fit_s)), float(np.median(kc_s))
    print("| n × d | labeled | k | k-center s | softmax fit s | ratio |\n|---|---|---|---|---|---|")
    print(f"| {args.n} × {args.d} | {args.labeled} | {args.k} | {c:.4f} | {f:.4f} | **{c / f:.2f}×** |")


if __name__ == "__main__":
    main()
