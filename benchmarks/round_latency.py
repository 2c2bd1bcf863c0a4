"""Round turnaround of the query engine: fit + score + select on a large synthetic pool.

One round of the loop, minus the oracle: fit the GLM on the labeled set (a fresh clone, as
:class:`alloop.ActiveLoop` does), score the pool with a strategy, pick a batch with
:func:`alloop.engine.select.select_batch`. For each (task, label count) the round is repeated;
each repetition fits once and then scores and selects with every strategy on that same model,
so all strategies are timed side by side in one run. The first repetition is a warm-up and is
not reported.

Reported per strategy, as medians over the timed rounds: fit s, score s, select s, turnaround s
(the median of the per-round sums fit + score + select), turnaround ÷ fit (the median
turnaround over the median fit: what a round costs beyond refitting) and turnaround ÷ random
(over the random baseline's median turnaround in the same setting).

The data: n pool rows and d features drawn from K Gaussian classes, x = μ_y + ε with
μ_c ~ N(0, separation² I) and ε ~ N(0, I), seeded. The labeled set is a separate draw of the
same law, fixed for all rounds of a setting (the timings are "a round at L labels").

Run from the repository root::

    .venv/bin/python benchmarks/round_latency.py --rounds 5 --threads 1 \
        --out benchmarks/results/round_latency.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

DEFAULT_STRATEGIES = (
    "random", "least-confident", "entropy", "margin", "egl", "coreset", "least-confident:diverse",
)
TASKS = ("softmax", "binary")


@dataclass
class Timing:
    fit: list[float]
    score: list[float]
    select: list[float]

    def turnaround(self) -> list[float]:
        return [f + s + q for f, s, q in zip(self.fit, self.score, self.select, strict=True)]


def gaussian_classes(
    n: int, d: int, n_classes: int, separation: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows x = μ_y + ε, y uniform over the classes, μ_c ~ N(0, separation²·I)."""
    means = separation * rng.standard_normal((n_classes, d))
    y = rng.integers(n_classes, size=n)
    return means[y] + rng.standard_normal((n, d)), y


def parse_strategy(spec: str) -> tuple[str, str | None]:
    """``"name"`` or ``"name:rule"`` → (name, rule or None for the strategy's own rule)."""
    name, _, rule = spec.partition(":")
    return name, rule or None


def bench_setting(
    task: str,
    n_labels: int,
    args: argparse.Namespace,
    X_pool: np.ndarray,
    X_all_labeled: np.ndarray,
    y_all_labeled: np.ndarray,
    classes: list[int],
) -> list[dict[str, Any]]:
    from alloop.engine.select import select_batch
    from alloop.models import LogisticGLM, SoftmaxGLM
    from strategies import get
    from strategies.base import check_compatible

    template = SoftmaxGLM(s=args.s) if task == "softmax" else LogisticGLM(s=args.s)
    X_lab, y_lab = X_all_labeled[:n_labels], y_all_labeled[:n_labels]
    specs = [parse_strategy(s) for s in args.strategies]
    timings = {spec: Timing([], [], []) for spec in specs}
    for round_ in range(args.rounds + 1):  # round 0 warms up caches, threads and imports
        t0 = time.perf_counter()
        model = template.clone().fit(X_lab, y_lab, classes=classes)
        fit_s = time.perf_counter() - t0
        for j, (name, rule) in enumerate(specs):
            strategy = get(name)
            check_compatible(strategy, model)
            rng = np.random.default_rng([args.seed, round_, j])
            t0 = time.perf_counter()
            scores = strategy.score(model, X_pool, X_labeled=X_lab, y_labeled=y_lab, rng=rng)
            t1 = time.perf_counter()
            select_batch(
                scores, args.batch, rule or strategy.batch, X_pool=X_pool, X_labeled=X_lab, rng=rng,
                center_distance=strategy.labeled_distance(scores, X_lab),
            )
            t2 = time.perf_counter()
            if round_ > 0:
                timings[(name, rule)].fit.append(fit_s)
                timings[(name, rule)].score.append(t1 - t0)
                timings[(name, rule)].select.append(t2 - t1)
    rows = []
    random_turnaround = None
    for (name, rule), t in timings.items():
        fit, turnaround = statistics.median(t.fit), statistics.median(t.turnaround())
        if name == "random" and rule is None:
            random_turnaround = turnaround
        rows.append({
            "task": task, "labels": n_labels, "strategy": name,
            "rule": rule or get(name).batch, "fit": fit,
            "score": statistics.median(t.score), "select": statistics.median(t.select),
            "turnaround": turnaround, "vs_fit": turnaround / fit,
        })
    for row in rows:
        row["vs_random"] = (
            None if random_turnaround is None else row["turnaround"] / random_turnaround
        )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| task | labels | strategy | rule | fit s | score s | select s | turnaround s "
        "| turnaround ÷ fit | ÷ random |"
    )
    lines = [head, "|" + "---|" * 4 + "---:|" * 6]
    for r in rows:
        vs_random = "—" if r["vs_random"] is None else f"{r['vs_random']:.2f}"
        lines.append(
            f"| {r['task']} | {r['labels']:,} | {r['strategy']} | {r['rule']} | {r['fit']:.4f} "
            f"| {r['score']:.4f} | {r['select']:.4f} | {r['turnaround']:.4f} "
            f"| {r['vs_fit']:.2f} | {vs_random} |"
        )
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> str:
    import scipy
    import sklearn
    import torch

    return (
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}; "
        f"{platform.machine()} with {os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), "
        f"threads: {args.threads or 'library default'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up)")
    parser.add_argument("--pool", type=int, default=100_000, help="pool rows")
    parser.add_argument("--features", type=int, default=64, help="feature columns")
    parser.add_argument("--labels", type=int, nargs="+", default=[500, 2000],
                        help="labeled-set sizes, one setting each")
    parser.add_argument("--classes", type=int, default=10, help="classes of the softmax task")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                        help="softmax (SoftmaxGLM, --classes classes), binary (LogisticGLM)")
    parser.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES),
                        help="registered names; 'name:rule' overrides the batch rule")
    parser.add_argument("--batch", type=int, default=10, help="batch size k")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and BLAS/OpenMP threads (default: the libraries' own)")
    parser.add_argument("--separation", type=float, default=0.35, help="scale of the class means")
    parser.add_argument("--s", type=float, default=0.0, help="GLM regularity s = log λ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")

    import torch
    from threadpoolctl import threadpool_limits

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    limits = threadpool_limits(limits=args.threads) if args.threads else None

    rows: list[dict[str, Any]] = []
    for task in args.tasks:
        n_classes = args.classes if task == "softmax" else 2
        rng = np.random.default_rng([args.seed, n_classes])
        X, y = gaussian_classes(
            args.pool + max(args.labels), args.features, n_classes, args.separation, rng
        )
        X_pool, X_lab, y_lab = X[: args.pool], X[args.pool :], y[args.pool :]
        for n_labels in args.labels:
            print(f"{task}: {args.pool:,} × {args.features} pool, {n_labels:,} labels …",
                  file=sys.stderr, flush=True)
            rows += bench_setting(
                task, n_labels, args, X_pool, X_lab, y_lab, list(range(n_classes))
            )
    if limits is not None:
        limits.restore_original_limits()

    given = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/round_latency.py " + " ".join(given)
    report = (
        f"# Round turnaround: fit + score + select\n\n"
        f"`{command.strip()}`\n\n"
        f"Pool {args.pool:,} × {args.features} (Gaussian classes, separation {args.separation}), "
        f"batch k = {args.batch}, GLM s = {args.s}; medians over {args.rounds} timed rounds "
        f"after one warm-up.\n{environment(args)}.\n\n{markdown_table(rows)}\n"
    )
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
