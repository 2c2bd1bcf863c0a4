"""Reading a comparison back from MLflow: which runs exist, and their learning curves.

Runs are told apart by the ``alloop`` tag: ``loop`` (a parent run per strategy and seed, written
by :class:`~alloop.tracking.MlflowTracker`), ``full_data`` (the reference model fitted on the
whole pool, one per seed) and ``summary`` (what :func:`alloop.compare.report` logs). A run's
settings are its flattened config params; two runs are the same experiment when their params
agree outside ``store.*`` and ``tracking.*`` (where files live, not what is computed).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alloop.config import ExperimentConfig
from alloop.tracking.base import RunRecord

#: values of the ``alloop`` tag
LOOP, FULL_DATA, SUMMARY = "loop", "full_data", "summary"

#: param prefixes that say where things are stored, not what is computed
_LOCATION = ("store.", "tracking.")
#: params that tell the runs of one comparison apart
_PER_RUN = ("seed", "strategy.")


def identity(params: dict[str, str]) -> dict[str, str]:
    """The params that decide a run's results (its config without file locations)."""
    return {k: v for k, v in params.items() if not k.startswith(_LOCATION)}


def config_params(config: ExperimentConfig) -> dict[str, str]:
    """A config as the flat string params its MLflow parent run carries."""
    from alloop.tracking.params import flatten

    return flatten(config.model_dump(mode="json"))


@dataclass
class Comparison:
    """The finished runs of one experiment, as data frames.

    Attributes
    ----------
    experiment : str
    experiment_id : str
    task : {"classification", "regression"}
    curves : DataFrame
        One row per (strategy, seed, round): ``strategy``, ``seed``, ``run_id``, ``labels`` and
        every curve metric (``accuracy``, ``log_loss``, ..., ``score_seconds``, ...).
    full : DataFrame
        One row per seed: ``seed``, ``run_id``, ``labels`` (the pool size) and test metrics of
        the model fitted on the whole pool. Empty when no full-data run was logged.
    params : dict
        The settings the loop runs share (strategy and seed left out).
    """

    experiment: str
    experiment_id: str
    task: str
    curves: pd.DataFrame
    full: pd.DataFrame
    params: dict[str, str] = field(default_factory=dict)

    def restrict(self, strategies: list[str], seeds: list[int]) -> Comparison:
        """The same comparison limited to some strategies and seeds."""
        curves = self.curves[self.curves["strategy"].isin(strategies) & self.curves["seed"].isin(seeds)]
        full = self.full[self.full["seed"].isin(seeds)] if len(self.full) else self.full
        return Comparison(self.experiment, self.experiment_id, self.task,
                          curves.reset_index(drop=True), full.reset_index(drop=True), self.params)

    @property
    def strategies(self) -> list[str]:
        return sorted(self.curves["strategy"].unique().tolist())

    @property
    def seeds(self) -> list[int]:
        return sorted(self.curves["seed"].unique().tolist())


def _latest(runs: list[RunRecord], key: Callable[[RunRecord], Any]) -> dict[Any, RunRecord]:
    chosen: dict[Any, RunRecord] = {}
    for run in runs:  # oldest first: a later run of the same key replaces an earlier one
        if run.status == "FINISHED":
            chosen[key(run)] = run
    return chosen


def load_comparison(experiment: str, tracking_uri: str | None = None) -> Comparison:
    """The newest finished run of every (strategy, seed) of ``experiment``, with its curve.

    Parameters
    ----------
    experiment : str
        MLflow experiment name (a compare config's ``name``, or ``tracking.experiment``).
    tracking_uri : str, optional
        Any MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.
    """
    from alloop.tracking import MlflowTracker

    # read through the Tracker protocol (find_runs, metric_history); never creates the experiment
    tracker = MlflowTracker.existing(experiment, tracking_uri)
    uri = tracker.tracking_uri
    loops = _latest(
        tracker.find_runs(LOOP),
        lambda r: (r.params.get("strategy.name"), int(r.params.get("seed", -1))),
    )
    if not loops:
        raise ValueError(
            f"experiment {experiment!r} at {uri} has no finished loop runs; run `alloop compare` first"
        )
    rows = []
    for (strategy, seed), run in sorted(loops.items()):
        keys = [k for k in run.metrics if k.startswith("curve.")]
        histories = {k.removeprefix("curve."): tracker.metric_history(run.run_id, k) for k in keys}
        steps = sorted(set().union(*histories.values())) if histories else []
        for step in steps:
            row = {"strategy": strategy, "seed": seed, "run_id": run.run_id, "labels": step}
            row.update({name: h.get(step, float("nan")) for name, h in histories.items()})
            rows.append(row)
    curves = pd.DataFrame(rows)
    task = "regression" if "rmse" in curves else "classification"

    shared = [identity(r.params) for r in loops.values()]
    shared = [{k: v for k, v in p.items() if not k.startswith(_PER_RUN)} for p in shared]
    differing = sorted({k for p in shared for k in set(p) | set(shared[0]) if p.get(k) != shared[0].get(k)})
    if differing:
        warnings.warn(
            f"the runs of {experiment!r} differ in {differing}: the comparison mixes settings",
            stacklevel=2,
        )

    fulls = _latest(tracker.find_runs(FULL_DATA), lambda r: int(r.params.get("seed", -1)))
    full = pd.DataFrame(
        [{"seed": seed, "run_id": r.run_id, **r.metrics} for seed, r in sorted(fulls.items())],
        columns=None if fulls else ["seed", "run_id"],
    )
    return Comparison(experiment, tracker.experiment_id, task, curves, full, shared[0])
