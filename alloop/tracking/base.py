"""The tracker protocol: a sink for rounds, curves and the final model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd


@dataclass(frozen=True)
class RoundReport:
    """What one round reports: its metrics, the items it queried (ids, scores, answers), and
    any further tables (name → frame, logged as ``<name>.csv``, e.g. per-user metrics)."""

    round: int
    n_labeled: int
    metrics: dict[str, float]
    queries: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """A run read back from a tracker: what a comparison needs to skip, resume or plot it.

    Attributes
    ----------
    run_id : str
    status : str
        ``"RUNNING"`` (or a run whose process was killed), ``"FINISHED"``, ``"FAILED"``,
        ``"KILLED"``.
    params : dict
        The run's flat string params (its config, see :func:`alloop.tracking.params.flatten`).
    metrics : dict
        The last value logged of each metric.
    """

    run_id: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class OneOffRun(Protocol):
    """A run outside the loop's rounds (a selection, a comparison's summary, an experiment's
    setting), opened by :meth:`Tracker.one_off_run`; ``run_id`` is None where nothing is tracked."""

    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class Tracker(Protocol):
    #: the parent run's id once it exists (a tracker that was unreachable at ``start`` creates
    #: it later; the loop keeps that id for ``--resume``)
    run_id: str | None

    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None) -> str | None:
        """Open (or reopen) the parent run; return its id."""

    def logged_rounds(self) -> set[int]:
        """Rounds whose nested run finished (used on resume to re-log the rest)."""

    def log_round(self, report: RoundReport) -> None: ...

    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None: ...

    def one_off_run(
        self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> AbstractContextManager[OneOffRun]:
        """Open a run of its own; it ends FINISHED when the block exits, FAILED on an exception."""
        ...

    def existing_run(self, run_id: str) -> OneOffRun:
        """A handle on a run already logged, to add metrics, tags or files to it."""
        ...

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Add tags to a run already logged (e.g. warnings a comparison noted for a loop's run)."""
        ...

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark a run ended (``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``)."""
        ...

    def find_runs(self, kind: str) -> list[RunRecord]:
        """The runs of this experiment whose ``alloop`` tag is ``kind`` (``"loop"``,
        ``"full_data"``, ...), oldest first; discarded runs are left out."""
        ...

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        """step → value of one metric of a run; a step logged twice (a resumed finish) keeps
        its last value."""
        ...

    def discard_run(self, run_id: str) -> None:
        """Mark a run and its nested (round) runs deleted; they no longer count as found."""
        ...


class NullTracker:
    """Tracks nothing (the Python API's default when no tracking URI is given)."""

    run_id: str | None = None

    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None) -> None:
        return None

    def logged_rounds(self) -> set[int]:
        return set()

    def log_round(self, report: RoundReport) -> None:
        return None

    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None:
        return None

    @contextmanager
    def one_off_run(
        self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> Iterator[OneOffRun]:
        yield NullRun()

    def existing_run(self, run_id: str) -> OneOffRun:
        return NullRun()

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        return None

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        return None

    def find_runs(self, kind: str) -> list[RunRecord]:
        return []

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        return {}

    def discard_run(self, run_id: str) -> None:
        return None


class NullRun:
    """A one-off run that records nothing."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None
