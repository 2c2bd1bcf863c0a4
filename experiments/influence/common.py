"""Shared plumbing of the influence reproductions: threads, MLflow runs, markdown tables.

Nothing here computes an influence; the scripts call :mod:`alloop.influence` for that.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
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

    Every run is a :meth:`alloop.tracking.MlflowTracker.one_off_run` (same experiment and
    artifact layout as ``alloop run``); the parent stays open until :meth:`finish`.
    """

    def __init__(self, experiment: str, run_name: str, params: dict[str, Any], uri: str | None) -> None:
        from alloop.tracking import MlflowTracker

        self._tracker = MlflowTracker(experiment, uri)
        self._open = ExitStack()
        self._parent = self._open.enter_context(
            self._tracker.one_off_run(run_name, tags={"alloop": "reproduction"})
        )
        self.run_id = self._parent.run_id
        self._parent.log_params(params)

    def child(self, name: str, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """A finished nested run holding one setting's metrics."""
        with self._tracker.one_off_run(name, parent_run_id=self.run_id) as run:
            run.log_params(params)
            run.log_metrics({metric_name(k): float(v) for k, v in metrics.items() if v == v})

    def finish(self, metrics: dict[str, float], files: Iterable[Path]) -> None:
        self._parent.log_metrics({metric_name(k): float(v) for k, v in metrics.items() if v == v})
        for path in files:
            self._parent.log_artifact(path)
        self._open.close()  # the parent run ends FINISHED


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
