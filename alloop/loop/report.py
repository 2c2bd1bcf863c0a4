"""The report stage: a round's metrics and queries to the tracker, and the progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from alloop.tracking.base import RoundReport


def queries_frame(store: Any, round_: int) -> pd.DataFrame:
    """One row per item a round asked: its score, and the answer it got (or ``unanswered``)."""
    requested = store.requests(round_)
    answers = {a.item_id: a for a in store.answers(round=round_)}
    return pd.DataFrame(
        [
            {
                "item_id": item,
                "score": score,
                "label": answers[item].label if item in answers else None,
                "kind": answers[item].kind if item in answers else "unanswered",
                "annotator": answers[item].annotator if item in answers else None,
            }
            for item, score in requested
        ],
        columns=["item_id", "score", "label", "kind", "annotator"],
    )


def report_round(tracker: Any, store: Any, round_: int, n_labeled: int,
                 metrics: dict[str, float], tables: dict[str, pd.DataFrame] | None = None) -> None:
    """Log one finished round (its metrics, its queries frame and any further tables)."""
    tracker.log_round(RoundReport(round_, n_labeled, metrics, queries_frame(store, round_),
                                  tables=dict(tables or {})))


class Progress:
    """A progress bar over rounds (nothing shown when disabled)."""

    def __init__(self, bar: Any, task: Any, name: str, metric: str) -> None:
        self._bar, self._task, self._name, self._metric = bar, task, name, metric

    def advance(self, row: dict[str, Any]) -> None:
        self._bar.update(self._task, advance=1, description=f"{self._name} {self._metric}="
                         f"{row.get(self._metric, float('nan')):.3f}")


@contextmanager
def progress(name: str, metric: str, total: int | None, done: int, show: bool) -> Iterator[Progress]:
    """A transient progress bar of ``total`` rounds, ``done`` of them already finished."""
    from rich.progress import Progress as RichProgress

    with RichProgress(disable=not show, transient=True) as bar:
        yield Progress(bar, bar.add_task(name, total=total, completed=done), name, metric)
