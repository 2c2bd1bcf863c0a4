"""Pool-scoring throughput in-process against Ray (1 and 2 workers), and from Parquet.

One fitted softmax GLM (``--classes`` classes, fitted by Newton on ``--n-train`` labels) and
one ``--items`` × ``--features`` float64 pool. For SLD and uncertainty sampling (least
confident) it times, side by side:

* in-process: ``strategy.score(model, X, **context)`` — what the loop does without Ray;
* Ray, 1 and 2 workers: :class:`alloop.scale.RayScoring` with ``num_workers`` 1 and 2 on a
  local cluster of 2 CPUs — the driver prepares the state (θ̇ for SLD), puts it and the pool's
  shards in the object store, and ``map_batches`` scores the shards;
* with ``--parquet``: the same pool written as Parquet files (``--files`` of them), scored by
  :func:`alloop.scale.score_parquet` with ``top_k=100`` — streamed in this process
  (pyarrow), and by Ray Data's ``read_parquet`` with 1 and 2 workers.

Each figure is the median wall time of ``--repeats`` calls after one untimed warm-up call
(which also starts Ray's workers); the settings are interleaved within each repeat, so load
from other work falls on all of them alike. Throughput = items ÷ wall time of the whole call,
the per-round preparation included. The overhead ratio is Ray 1 worker ÷ in-process (wall
time); the load average is printed with the table because on a shared machine the absolute
figures move with it, the side-by-side ratios much less.

Run from the repository root::

    .venv/bin/python benchmarks/scale.py --items 1000000 --features 64 --repeats 3 \\
        --threads 1 --parquet --out benchmarks/results/scale.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

STRATEGIES = ("sld", "least-confident")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="pool rows")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=500, help="labels the model is fit on")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting")
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per Ray batch")
    parser.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (driver)")
    parser.add_argument("--parquet", action="store_true", help="also time Parquet streaming")
    parser.add_argument("--files", type=int, default=8, help="--parquet: files in the pool")
    parser.add_argument("--out", type=Path, default=None, help="write the table as markdown")
    return parser.parse_args(argv)


def _problem(args: argparse.Namespace) -> tuple[Any, np.ndarray, dict[str, Any]]:
    from alloop.models import SoftmaxGLM

    rng = np.random.default_rng(0)
    W = rng.normal(size=(args.features, args.classes)) / np.sqrt(args.features)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        X = rng.normal(size=(n, args.features))
        return X, np.argmax(X @ W * 3 + rng.gumbel(size=(n, args.classes)), axis=1)

    X_lab, y_lab = sample(args.n_train)
    model = SoftmaxGLM(s=0.0).fit(X_lab, y_lab)
    X_pool = rng.normal(size=(args.items, args.features))
    return model, X_pool, {"X_labeled": X_lab, "y_labeled": y_lab}


def _write_parquet(X: np.ndarray, folder: Path, files: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for part, rows in enumerate(np.array_split(np.arange(len(X)), files)):
        columns = {"id": pa.array(rows)}
        columns.update({f"x{j}": X[rows, j] for j in range(X.shape[1])})
        pq.write_table(pa.table(columns), folder / f"part-{part:03d}.parquet",
                       row_group_size=65_536)


def _time(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> str:
    args = _args(argv)
    if args.threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    import ray

    import strategies
    from alloop.scale import RayScoring, score_parquet

    model, X, context = _problem(args)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    settings: dict[tuple[str, str], Callable[[], Any]] = {}
    folder = tempfile.TemporaryDirectory(prefix="alloop-scale-")
    try:
        if args.parquet:
            _write_parquet(X, Path(folder.name), args.files)
        for name in STRATEGIES:
            strategy = strategies.get(name)
            settings[(name, "in-process")] = lambda s=strategy: s.score(model, X, **context)
            for workers in (1, 2):
                scoring = RayScoring(batch_size=args.batch_size, num_workers=workers)
                settings[(name, f"Ray, {workers} worker{'s' * (workers > 1)}")] = (
                    lambda s=strategy, f=scoring: f(s, model, X, **context)
                )
            if args.parquet:
                settings[(name, "Parquet, in-process stream")] = lambda n=name: score_parquet(
                    n, model, folder.name, backend="local", top_k=100,
                    batch_size=args.batch_size, **context)
                for workers in (1, 2):
                    settings[(name, f"Parquet, Ray {workers} worker{'s' * (workers > 1)}")] = (
                        lambda n=name, w=workers: score_parquet(
                            n, model, folder.name, backend="ray", top_k=100, num_workers=w,
                            batch_size=args.batch_size, **context)
                    )
        for call in settings.values():  # warm-up: Ray workers start, imports, caches
            call()
        times: dict[tuple[str, str], list[float]] = {key: [] for key in settings}
        for _ in range(args.repeats):
            for key, call in settings.items():
                times[key].append(_time(call))
    finally:
        ray.shutdown()
        folder.cleanup()
    median = {key: statistics.median(values) for key, values in times.items()}
    text = _table(args, median, argv)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return text


def _table(args: argparse.Namespace, median: dict[tuple[str, str], float],
           argv: list[str] | None) -> str:
    import ray
    import torch

    n = args.items
    lines = [
        f"# Pool scoring throughput: in-process vs Ray ({n:,} × {args.features})",
        "",
        "Command: `.venv/bin/python benchmarks/scale.py "
        + " ".join(sys.argv[1:] if argv is None else argv) + "`",
        "",
        f"Softmax GLM, {args.classes} classes, fitted on {args.n_train} labels; float64 pool; "
        f"Ray batch size {args.batch_size}; local Ray cluster of 2 CPUs; median of "
        f"{args.repeats} calls after a warm-up. Load average at the end: "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores "
        "(shared with other work: compare the columns side by side).",
        "",
        "| strategy | setting | seconds per call | items/s | ÷ in-process (time) |",
        "|---|---|---:|---:|---:|",
    ]
    for name in STRATEGIES:
        base = median[(name, "in-process")]
        for (strategy, setting), seconds in median.items():
            if strategy == name:
                lines.append(f"| {name} | {setting} | {seconds:.3f} | {n / seconds:,.0f} | "
                             f"{seconds / base:.2f} |")
    lines += ["", "Overhead ratio (Ray 1 worker ÷ in-process, wall time) and the 2-worker "
              "speed-up (Ray 1 worker ÷ Ray 2 workers):", ""]
    for name in STRATEGIES:
        base, one, two = (median[(name, s)] for s in ("in-process", "Ray, 1 worker",
                                                      "Ray, 2 workers"))
        line = (f"- {name}: overhead {one / base:.2f}×, 2-worker speed-up {one / two:.2f}×; "
                f"Ray per-worker throughput {n / one:,.0f} items/s")
        if (name, "Parquet, Ray 1 worker") in median:
            p1, p2 = median[(name, "Parquet, Ray 1 worker")], median[(name, "Parquet, Ray 2 workers")]
            line += (f"; from Parquet {n / p1:,.0f} items/s per worker, 2-worker speed-up "
                     f"{p1 / p2:.2f}×")
        lines.append(line)
    lines += ["", f"Python {platform.python_version()}, numpy {np.__version__}, torch "
              f"{torch.__version__}, ray {ray.__version__}, {platform.machine()}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
