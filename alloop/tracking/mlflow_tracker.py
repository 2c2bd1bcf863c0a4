"""MLflow tracking: a parent run per (strategy, seed), one nested run per round.

The tracker only writes. The label store is the loop's source of truth; on resume, rounds the
store has finished but MLflow has not (a crash between the two) are re-logged from the store.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from alloop.tracking.base import RoundReport

#: MLflow's local SQLite store in the working directory: the zero-set-up default.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Keep a local SQLite store's artifacts beside its file (``mlartifacts/``), not in the cwd."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent.resolve() / "mlartifacts" / experiment).as_uri()


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → flat ``a.b.c`` keys with string values (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


class MlflowTracker:
    """Writes the loop's rounds to MLflow.

    Parameters
    ----------
    experiment : str
        MLflow experiment name (created if missing).
    tracking_uri : str, optional
        See :func:`resolve_tracking_uri`.
    """

    def __init__(self, experiment: str, tracking_uri: str | None = None) -> None:
        import mlflow  # imported lazily: importing mlflow costs a second or two

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=_artifact_location(self.tracking_uri, experiment)
            )
        else:
            self.experiment_id = found.experiment_id
        self.experiment = experiment
        self.run_id: str | None = None

    # ----------------------------------------------------------------- parent run
    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None = None) -> str:
        if resume_run_id is not None:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(resume_run_id)
            except MlflowException:
                import warnings

                warnings.warn(
                    f"run {resume_run_id} is not in {self.tracking_uri}; starting a new parent run "
                    "there and re-logging every finished round from the label store",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                self.run_id = run.info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                self._drop_unfinished_rounds()
                return self.run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={"alloop": "loop"})
        self.run_id = run.info.run_id
        flat = flatten(params)
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        return self.run_id

    def _round_runs(self) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}'",
            max_results=10000,
        )

    def _drop_unfinished_rounds(self) -> None:
        for run in self._round_runs():
            if run.info.status != "FINISHED":
                self.client.delete_run(run.info.run_id)

    def logged_rounds(self) -> set[int]:
        return {
            int(run.data.tags["alloop.round"])
            for run in self._round_runs()
            if run.info.status == "FINISHED" and "alloop.round" in run.data.tags
        }

    # ----------------------------------------------------------------- rounds
    def log_round(self, report: RoundReport) -> None:
        from mlflow.entities import Metric

        assert self.run_id is not None, "start() the parent run first"
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"round-{report.round:03d}",
            tags={"mlflow.parentRunId": self.run_id, "alloop.round": str(report.round)},
        )
        rid = run.info.run_id
        metrics = {"labels": float(report.n_labeled), **report.metrics}
        stamp = int(pd.Timestamp.now().timestamp() * 1000)
        self.client.log_batch(
            rid, metrics=[Metric(k, float(v), stamp, report.round) for k, v in metrics.items()]
        )
        if not report.queries.empty:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "queries.csv"
                report.queries.to_csv(path, index=False)
                self.client.log_artifact(rid, str(path))
        self.client.set_terminated(rid, "FINISHED")

    # ----------------------------------------------------------------- end
    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None:
        """Log the learning curve (metric vs labels, step = labels), its plot and the model."""
        from mlflow.entities import Metric

        assert self.run_id is not None
        stamp = int(pd.Timestamp.now().timestamp() * 1000)
        logged = {  # a resumed run logs only the points it does not have yet
            name: {m.step for m in self.client.get_metric_history(self.run_id, f"curve.{name}")}
            for name in curve.columns
            if name not in ("round", "labels")
        }
        points = [
            Metric(f"curve.{name}", float(row[name]), stamp, int(row["labels"]))
            for _, row in curve.iterrows()
            for name in curve.columns
            if name not in ("round", "labels") and pd.notna(row[name])
            and int(row["labels"]) not in logged[name]
        ]
        for start in range(0, len(points), 500):
            self.client.log_batch(self.run_id, metrics=points[start : start + 500])
        if len(curve) and status == "FINISHED":
            last = curve.iloc[-1]
            finals = [
                Metric(f"final.{name}", float(last[name]), stamp, 0)
                for name in curve.columns
                if name not in ("round",) and pd.notna(last[name])
            ]
            self.client.log_batch(self.run_id, metrics=finals)
        with tempfile.TemporaryDirectory() as tmp:
            curve_path = Path(tmp) / "learning_curve.csv"
            curve.to_csv(curve_path, index=False)
            self.client.log_artifact(self.run_id, str(curve_path))
            if len(curve) and metric in curve:
                from alloop.plots import plot_learning_curve

                png = Path(tmp) / "learning_curve.png"
                plot_learning_curve(curve, metric, png, title=self.experiment)
                self.client.log_artifact(self.run_id, str(png))
            if model is not None:
                model_path = Path(tmp) / "model.pkl"
                with open(model_path, "wb") as fh:
                    pickle.dump(model, fh)
                self.client.log_artifact(self.run_id, str(model_path), artifact_path="model")
        self.client.set_terminated(self.run_id, status)
