"""Reading MLflow runs back as plain records, and discarding them: what comparisons need.

The loop never reads its tracker to decide a round (the label store does that). A comparison
does: it skips pairs that finished, resumes those that were killed, and plots their curves.
These functions back :class:`~alloop.tracking.MlflowTracker`'s ``find_runs``,
``metric_history`` and ``discard_run``.
"""

from __future__ import annotations

from typing import Any

from alloop.tracking.base import RunRecord


def record(run: Any) -> RunRecord:
    """An ``mlflow.entities.Run`` as a :class:`RunRecord`."""
    return RunRecord(run.info.run_id, run.info.status, dict(run.data.params), dict(run.data.metrics))


def find_runs(client: Any, experiment_id: str, kind: str) -> list[RunRecord]:
    """Every active run of ``experiment_id`` whose ``alloop`` tag is ``kind``, oldest first."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.alloop = '{kind}'", max_results=1000,
            order_by=["attributes.start_time ASC"], page_token=token,
        )
        runs.extend(record(run) for run in page)
        token = page.token
        if not token:
            return runs


def metric_history(client: Any, run_id: str, key: str) -> dict[int, float]:
    """step → value of a metric; a value logged twice (a resumed finish) counts once."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return {m.step: m.value for m in points}


def discard_run(client: Any, experiment_id: str, run_id: str) -> None:
    """Mark a parent run and its nested round runs deleted (MLflow keeps them restorable)."""
    nested = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=10000
    )
    for run in nested:
        client.delete_run(run.info.run_id)
    client.delete_run(run_id)


def experiment_names(client: Any) -> list[str]:
    """The active experiments of a tracking store, sorted (for error messages)."""
    return sorted(e.name for e in client.search_experiments())
