"""MLflow tracking: a parent run per (strategy, seed), one nested run per round.

The loop only writes to it. The label store is the loop's source of truth; on resume, rounds
the store has finished but MLflow has not (a crash between the two, or a tracking server that
was down) are re-logged from the store. Comparisons read finished runs back through
``find_runs`` and ``metric_history`` (see :mod:`alloop.tracking.mlflow_read`).

:class:`MlflowWriter` makes one attempt per call and may be called again after a failure: a
half-logged round or parent run is completed, not logged twice. :class:`MlflowTracker` wraps it
in :class:`~alloop.tracking.resilient.ResilientTracker`, so a tracking server that is briefly
unreachable costs the loop a bounded wait, never a round.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from alloop.tracking import mlflow_read
from alloop.tracking.base import RoundReport, RunRecord
from alloop.tracking.mlflow_http import is_unreachable, mlflow_http_defaults
from alloop.tracking.mlflow_run import MlflowRun
from alloop.tracking.params import flatten
from alloop.tracking.resilient import Backoff, ResilientTracker

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


F = TypeVar("F", bound=Callable[..., Any])


def _single_attempt(method: F) -> F:
    """Run a writer method with alloop's HTTP defaults: one quick try, no retries inside."""

    @wraps(method)
    def call(self: MlflowWriter, *args: Any, **kwargs: Any) -> Any:
        with mlflow_http_defaults(self.tracking_uri):
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


class MlflowWriter:
    """Writes the loop's rounds to MLflow, one attempt per call; safe to call again after a failure.

    Parameters
    ----------
    experiment : str
        MLflow experiment name (created on first use if missing).
    tracking_uri : str, optional
        See :func:`resolve_tracking_uri`.
    """

    def __init__(self, experiment: str, tracking_uri: str | None = None) -> None:
        import mlflow  # imported lazily: importing mlflow costs a second or two

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment = experiment
        self.run_id: str | None = None
        self._experiment_id: str | None = None
        self._params_logged = 0  # params of a new parent run logged so far (in chunks)
        self._rounds: dict[int, dict[str, Any]] = {}  # progress of rounds not finished yet
        self._finish_stamp: int | None = None

    @property
    def experiment_id(self) -> str:
        """The experiment's id; looked up (or created, or restored) on first use."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                self._experiment_id = self.client.create_experiment(
                    self.experiment,
                    artifact_location=_artifact_location(self.tracking_uri, self.experiment),
                )
            else:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self._experiment_id = found.experiment_id
        return self._experiment_id

    # ----------------------------------------------------------------- parent run
    @_single_attempt
    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None = None) -> str:
        if resume_run_id is not None and self.run_id is None:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(resume_run_id)
            except MlflowException as exc:
                if is_unreachable(exc):
                    raise
                warnings.warn(
                    f"run {resume_run_id} is not in {self.tracking_uri}; starting a new parent run "
                    "there and re-logging every finished round from the label store",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                self.client.update_run(run.info.run_id, status="RUNNING")
                self.run_id = run.info.run_id
                self._params_logged = -1  # a resumed run has its params
        if self._params_logged < 0:
            self._drop_unfinished_rounds()
            return self.run_id
        if self.run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags={"alloop": "loop"})
            self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(self._params_logged, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])
            self._params_logged = start + 100
        return self.run_id

    def _round_runs(self) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}'",
            max_results=10000,
        )

    def _drop_unfinished_rounds(self) -> None:
        """Delete nested runs left RUNNING (a crash, or a reply lost while the server went down)."""
        open_now = {progress["run_id"] for progress in self._rounds.values()}
        for run in self._round_runs():
            if run.info.status != "FINISHED" and run.info.run_id not in open_now:
                self.client.delete_run(run.info.run_id)

    @_single_attempt
    def logged_rounds(self) -> set[int]:
        return {
            int(run.data.tags["alloop.round"])
            for run in self._round_runs()
            if run.info.status == "FINISHED" and "alloop.round" in run.data.tags
        }

    # ----------------------------------------------------------------- rounds
    @_single_attempt
    def log_round(self, report: RoundReport) -> None:
        """Log one round as a nested run; after a failure, a second call completes it."""
        from mlflow.entities import Metric

        assert self.run_id is not None, "start() the parent run first"
        # each step is done once: a retry neither opens a second nested run nor logs a metric
        # twice (same timestamp: MLflow keeps one copy)
        progress = self._rounds.setdefault(
            report.round, {"stamp": int(pd.Timestamp.now().timestamp() * 1000)}
        )
        if "run_id" not in progress:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"round-{report.round:03d}",
                tags={"mlflow.parentRunId": self.run_id, "alloop.round": str(report.round)},
            )
            progress["run_id"] = run.info.run_id
        rid = progress["run_id"]
        if not progress.get("metrics"):
            metrics = {"labels": float(report.n_labeled), **report.metrics}
            self.client.log_batch(rid, metrics=[
                Metric(k, float(v), progress["stamp"], report.round) for k, v in metrics.items()
            ])
            progress["metrics"] = True
        tables = {"queries": report.queries, **report.tables}
        for name, table in tables.items():
            if progress.get(f"table.{name}") or table.empty:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{name}.csv"
                table.to_csv(path, index=False)
                self.client.log_artifact(rid, str(path))
            progress[f"table.{name}"] = True
        self.client.set_terminated(rid, "FINISHED")
        del self._rounds[report.round]

    # ----------------------------------------------------------------- end
    @_single_attempt
    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None:
        """Log the learning curve (metric vs labels, step = labels), its plot and the model."""
        from mlflow.entities import Metric

        assert self.run_id is not None
        if self._finish_stamp is None:
            self._finish_stamp = int(pd.Timestamp.now().timestamp() * 1000)
        stamp = self._finish_stamp
        logged = {  # a resumed (or retried) finish logs only the points it does not have yet
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
        self._drop_unfinished_rounds()
        self.client.set_terminated(self.run_id, status)
        self._finish_stamp = None


class MlflowTracker(ResilientTracker):
    """Writes the loop's rounds to MLflow and rides out a tracking server that is briefly down.

    Calls that cannot reach the server are retried with backoff (see
    :class:`~alloop.tracking.resilient.Backoff`), then kept in memory and logged, in order, once
    the server answers again; a warning names the server once. Labels never wait on it.

    Parameters
    ----------
    experiment : str
        MLflow experiment name (created if missing).
    tracking_uri : str, optional
        See :func:`resolve_tracking_uri`.
    backoff : Backoff, optional
        Retry budgets; default :meth:`Backoff.from_env` (``ALLOOP_TRACKING_RETRY_SECONDS``,
        ``ALLOOP_TRACKING_FINISH_SECONDS``).

    Examples
    --------
    >>> tracker = MlflowTracker("demo", "http://127.0.0.1:5000")  # doctest: +SKIP
    >>> loop = ActiveLoop(..., tracker=tracker)  # doctest: +SKIP
    """

    def __init__(
        self, experiment: str, tracking_uri: str | None = None, *, backoff: Backoff | None = None
    ) -> None:
        writer = MlflowWriter(experiment, tracking_uri)
        super().__init__(writer, is_unreachable, backoff=backoff, where=writer.tracking_uri)
        self.writer = writer

    @classmethod
    def existing(
        cls, experiment: str, tracking_uri: str | None = None, *, backoff: Backoff | None = None
    ) -> MlflowTracker:
        """A tracker on an experiment that must exist already: reading one must not create it.

        Raises
        ------
        ValueError
            When ``tracking_uri`` has no such (active) experiment; the message lists those it has.
        """
        tracker = cls(experiment, tracking_uri, backoff=backoff)
        found = tracker.writer.client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage == "deleted":
            names = mlflow_read.experiment_names(tracker.writer.client)
            raise ValueError(
                f"no MLflow experiment {experiment!r} at {tracker.tracking_uri}; experiments "
                f"there: {names}. Pass the tracking URI the runs were logged to (--tracking-uri)"
            )
        return tracker

    # runs next to the loop's (selection, comparisons, experiments): direct calls, no buffering
    @property
    def client(self) -> Any:
        """The ``mlflow.MlflowClient``, for tests and debugging (alloop reads through
        :meth:`find_runs` and :meth:`metric_history`, writes through :meth:`one_off_run`)."""
        return self.writer.client

    @contextmanager
    def one_off_run(
        self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> Iterator[MlflowRun]:
        """A run of its own in this experiment; FINISHED when the block exits, FAILED on an error.

        Examples
        --------
        >>> with MlflowTracker("demo").one_off_run("select-greedy") as run:  # doctest: +SKIP
        ...     run.log_metrics({"accuracy": 0.9})
        """
        all_tags = dict(tags or {})
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        created = self.writer.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        run = MlflowRun(self.writer.client, created.info.run_id)
        try:
            yield run
        except BaseException:
            self.writer.client.set_terminated(run.run_id, "FAILED")
            raise
        self.writer.client.set_terminated(run.run_id, "FINISHED")

    def existing_run(self, run_id: str) -> MlflowRun:
        return MlflowRun(self.writer.client, run_id)

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.writer.client.set_tag(run_id, key, value)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.writer.client.set_terminated(run_id, status)

    def find_runs(self, kind: str) -> list[RunRecord]:
        return mlflow_read.find_runs(self.writer.client, self.experiment_id, kind)

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        return mlflow_read.metric_history(self.writer.client, run_id, key)

    def discard_run(self, run_id: str) -> None:
        mlflow_read.discard_run(self.writer.client, self.experiment_id, run_id)

    @property
    def experiment_id(self) -> str:
        return self.writer.experiment_id

    @property
    def experiment(self) -> str:
        return self.writer.experiment

    @property
    def tracking_uri(self) -> str:
        return self.writer.tracking_uri

