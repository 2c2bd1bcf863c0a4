"""The tracker protocol: a sink for rounds, curves and the final model."""

from __future__ import annotations

from dataclasses import dataclass, field
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


class Tracker(Protocol):
    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None) -> str | None:
        """Open (or reopen) the parent run; return its id."""

    def logged_rounds(self) -> set[int]:
        """Rounds whose nested run finished (used on resume to re-log the rest)."""

    def log_round(self, report: RoundReport) -> None: ...

    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracks nothing (the Python API's default when no tracking URI is given)."""

    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None) -> None:
        return None

    def logged_rounds(self) -> set[int]:
        return set()

    def log_round(self, report: RoundReport) -> None:
        return None

    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None:
        return None
