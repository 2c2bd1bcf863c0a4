"""Shared plumbing of the influence reproductions: threads, MLflow runs, markdown tables.

Nothing here computes an influence; the scripts call :mod:`alloop.influence` for that.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def single_thread(threads: int = 1) -> None:
    """Pin torch and BLAS to ``threads`` threads (the scripts' budget is stated for one core)."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - optional
        pass


def metric_name(name: str) -> str:
    """An MLflow-safe metric name: ``jaccard@10%`` → ``jaccard_at_10pct``."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("@", "_at_").replace("%", "pct"))


class Tracker:
    """One MLflow parent run per script invocation, one nested run per (setting, seed).

    Uses :class:`alloop.tracking.MlflowTracker` for the experiment (same artifact layout as
    ``alloop run``) and writes with the plain ``MlflowClient``.
    """

    def __init__(self, experiment: str, run_name: str, params: dict[str, Any], uri: str | None) -> None:
        from mlflow.entities import Param

        from alloop.tracking import MlflowTracker
        from alloop.tracking.mlflow_tracker import flatten

        base = MlflowTracker(experiment, uri)
        self.client, self.experiment_id = base.client, base.experiment_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={"alloop": "reproduction"})
        self.run_id = run.info.run_id
        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def child(self, name: str, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """A finished nested run holding one setting's metrics."""
        from mlflow.entities import Metric, Param

        from alloop.tracking.mlflow_tracker import flatten

        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"mlflow.parentRunId": self.run_id}
        )
        rid = run.info.run_id
        stamp = int(time.time() * 1000)
        self.client.log_batch(
            rid,
            params=[Param(k, v) for k, v in flatten(params).items()],
            metrics=[Metric(metric_name(k), float(v), stamp, 0) for k, v in metrics.items() if v == v],
        )
        self.client.set_terminated(rid, "FINISHED")

    def finish(self, metrics: dict[str, float], files: Iterable[Path]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), stamp, 0) for k, v in metrics.items() if v == v]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")


class NoTracker:
    """Stands in for :class:`Tracker` with ``--no-track``."""

    run_id = None

    def child(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish(self, *args: Any, **kwargs: Any) -> None:
        pass


def tracker(experiment: str, run_name: str, params: dict[str, Any], uri: str | None, track: bool):
    return Tracker(experiment, run_name, params, uri) if track else NoTracker()


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one of l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± sd`` over seeds (sample sd; ``mean`` alone for one value)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def write_outputs(name: str, markdown: str, frame: Any, out: Path | None = None) -> list[Path]:
    """``results/<name>.md`` and ``results/<name>.csv`` (raw per-seed numbers)."""
    folder = out or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    md, csv = folder / f"{name}.md", folder / f"{name}.csv"
    md.write_text(markdown.rstrip() + "\n")
    frame.to_csv(csv, index=False)
    return [md, csv]


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="alloop-influence-"))
