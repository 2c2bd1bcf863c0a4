"""The evaluate stage: a round's metrics after its refit.

Test metrics (when there is test data), the share of evaluation predictions that changed,
the regularity ``s``, every stop rule's statistic, the round's answer counts and, with several
annotators, their agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alloop.loop.fit import s_metrics
from alloop.metrics import evaluate


def changed_share(current: np.ndarray, previous: np.ndarray, task: str) -> float:
    """Share of evaluation predictions that changed (regression: by more than 1e-3 std)."""
    if task == "regression":
        scale = float(np.std(current)) or 1.0
        return float(np.mean(np.abs(current - previous) > 1e-3 * scale))
    return float(np.mean(current != previous))


def model_metrics(model: Any, X_test: Any, y_test: Any, classes: Any, metrics: Sequence[str],
                  current: np.ndarray, previous: np.ndarray | None, task: str) -> dict[str, float]:
    """Test metrics, ``changed`` (against the last round's predictions) and ``s``."""
    out: dict[str, float] = {}
    if X_test is not None:
        out.update(evaluate(model, X_test, y_test, classes, list(metrics)))
    if previous is not None:
        out["changed"] = changed_share(np.asarray(current), np.asarray(previous), task)
    out.update(s_metrics(model.s))
    return out


def answer_metrics(store: Any, round_: int, asked: set[str], pool: Any) -> dict[str, float]:
    """``answered``, ``skipped`` and ``open`` of this round; annotator agreement when several."""
    this_round = store.answers(round=round_)
    out = {
        "answered": float(sum(a.kind == "label" for a in this_round)),
        "skipped": float(sum(a.kind != "label" for a in this_round)),
        "open": float(len(asked - {a.item_id for a in this_round})),
    }
    everything = store.answers(kind="label")
    if len({a.annotator for a in everything}) > 1:
        from alloop.aggregation import agreement_metrics

        out.update(agreement_metrics(everything, dict(zip(pool.ids[pool.labeled],
                                                          pool.labels[pool.labeled]))))
    return out
