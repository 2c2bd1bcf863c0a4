"""What ``alloop select CONFIG`` does: load and split the data, run the selection, write the
files, log one MLflow run through the tracker.

The config is an ordinary experiment config plus a ``selection:`` section
(:mod:`alloop.config.selection`); the algorithm is :mod:`alloop.influence.selection`; the
command is :mod:`alloop.cli.select`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alloop.config.selection import SECTION, SelectionConfig, load_selection_config
from alloop.influence.selection import (
    SelectionResult,
    select_and_retrain,
    split_candidates,
    take_rows,
)


@dataclass(frozen=True)
class SelectionRun:
    """What :func:`select_command` wrote: the result, the output folder and the MLflow run id."""

    result: SelectionResult
    out: Path
    run_id: str | None
    counts: dict[str, int]


def _prepare(config: SelectionConfig) -> dict[str, Any]:
    """Load and split the data: base, candidate, validation and test features and labels."""
    from alloop.experiment import prepare_data

    exp, opts = config.experiment, config.selection
    data = prepare_data(exp)
    ids = data.pool.ids
    y = np.asarray([data.truth[i] for i in ids.tolist()])
    has_val = data.X_val is not None
    split = split_candidates(
        y, base=opts.base, candidate=opts.candidate,
        validation=0.0 if has_val else (opts.validation if opts.validation is not None else 0.2),
        seed=exp.seed,
    )
    X = data.pool.X
    out = {
        "ids": ids, "classes": data.classes, "task": data.task,
        "X_base": take_rows(X, split.base), "y_base": y[split.base],
        "X_cand": take_rows(X, split.candidate), "y_cand": y[split.candidate], "cand_ids": ids[split.candidate],
        "X_test": data.X_test, "y_test": data.y_test,
    }
    if has_val:
        out["X_val"], out["y_val"] = data.X_val, np.asarray(data.y_val)
    else:
        out["X_val"], out["y_val"] = take_rows(X, split.validation), y[split.validation]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def select_command(
    config_path: str | Path,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    *,
    seed: int | None = None,
    track: bool = True,
) -> SelectionRun:
    """Run a data-selection config end to end: what ``alloop select CONFIG`` does.

    Writes into ``out`` (default ``.alloop/<name>/selection``):

    * ``selected.csv`` — id, label, score and rank of every chosen candidate, best first;
    * ``candidate_scores.csv`` — every candidate's id, label, score and whether it was chosen;
    * ``metrics.json`` — the retrained model's test metrics (``test``), the base-only and
      base ∪ all-candidates references, the set sizes and timings.

    and logs one MLflow run (experiment: ``tracking.experiment`` or the config name; tag
    ``alloop=select``) with the config as params, the metrics, and those files as artifacts.

    Parameters
    ----------
    config_path : path
        YAML config (see the module docstring).
    tracking_uri : str, optional
        MLflow URI; default the config's ``tracking.uri``, then ``MLFLOW_TRACKING_URI``, then
        ``sqlite:///mlflow.db``.
    out : path, optional
        Output folder (created).
    seed : int, optional
        Overrides the config's seed.
    track : bool
        Log to MLflow.
    """
    import pandas as pd

    from alloop.experiment import build_model

    config = load_selection_config(config_path, seed=seed)
    exp, opts = config.experiment, config.selection
    d = _prepare(config)
    n_classes = None if d["classes"] is None else len(d["classes"])
    template = build_model(exp, d["task"], n_classes)
    result = select_and_retrain(
        template, d["X_base"], d["y_base"], d["X_cand"], d["y_cand"], d["X_val"], d["y_val"],
        method=opts.method, budget=opts.budget, classes=d["classes"],
        X_test=d["X_test"], y_test=d["y_test"], solver=opts.solver, damping=opts.damping,
        compare_full=opts.compare_full,
    )
    counts = {
        "n_base": int(len(d["y_base"])),
        "n_candidates": int(len(d["y_cand"])),
        "n_validation": int(len(d["y_val"])),
        "n_test": 0 if d["y_test"] is None else int(len(d["y_test"])),
        "n_selected": int(result.selected.size),
    }

    out_dir = Path(out) if out is not None else Path(".alloop") / exp.name / "selection"
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = np.empty(result.scores.size, dtype=np.int64)
    rank[result.selected] = np.arange(1, result.selected.size + 1)
    chosen = np.zeros(result.scores.size, dtype=bool)
    chosen[result.selected] = True
    table = pd.DataFrame({
        "id": d["cand_ids"], "label": d["y_cand"], "score": result.scores, "selected": chosen,
    })
    table.to_csv(out_dir / "candidate_scores.csv", index=False)
    picked = table.iloc[result.selected].drop(columns="selected").assign(rank=rank[result.selected])
    picked.to_csv(out_dir / "selected.csv", index=False)
    report = {
        "test": result.metrics,
        "base_only": result.base_metrics,
        "base_plus_all_candidates": result.full_metrics,
        **counts,
        "selected_fraction": counts["n_selected"] / counts["n_candidates"],
        "method": opts.method,
        "budget": opts.budget,
        "seconds": result.seconds,
    }

    run_id = None
    with _selection_run(config, tracking_uri, track) as run:
        run_id = run.run_id
        if run_id is not None:
            report["mlflow_run_id"] = run_id
        (out_dir / "metrics.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
        if run_id is not None:
            _log_results(run, config, report, out_dir)
    return SelectionRun(result, out_dir, run_id, counts)


def _selection_run(config: SelectionConfig, tracking_uri: str | None, track: bool) -> Any:
    """A one-off run in the config's experiment (tag ``alloop=select``), or a null one."""
    from alloop.tracking.base import NullTracker

    if not track:
        return NullTracker().one_off_run("select")
    from alloop.tracking.mlflow_tracker import MlflowTracker

    exp = config.experiment
    tracker = MlflowTracker(exp.tracking.experiment or exp.name, tracking_uri or exp.tracking.uri)
    return tracker.one_off_run(
        f"select-{config.selection.method}-seed{exp.seed}", tags={"alloop": "select"}
    )


def _log_results(run: Any, config: SelectionConfig, report: dict[str, Any], out_dir: Path) -> None:
    """Params (the config), metrics (test metrics, set sizes, timings) and the output files."""
    exp = config.experiment
    run.log_params({**exp.model_dump(mode="json"), SECTION: config.selection.model_dump(mode="json")})
    values = {k: float(report[k]) for k in ("n_base", "n_candidates", "n_validation", "n_test",
                                            "n_selected", "selected_fraction")}
    for prefix, key in (("test", "test"), ("base_only", "base_only"),
                        ("base_plus_all", "base_plus_all_candidates")):
        values.update({f"{prefix}.{k}": float(v) for k, v in (report[key] or {}).items()})
    values.update({f"seconds.{k}": float(v) for k, v in report["seconds"].items()})
    run.log_metrics(values)
    for name in ("selected.csv", "candidate_scores.csv", "metrics.json"):
        run.log_artifact(out_dir / name)
