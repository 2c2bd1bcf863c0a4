"""The score stage: the strategy's score of every candidate, with the context it needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from alloop.loop.validation import CONTEXT, rng

#: ``scoring(strategy, model, X_pool, **context) -> scores``: scores elsewhere (e.g.
#: :class:`alloop.scale.RayScoring`), returning exactly what ``strategy.score`` would.
Scoring = Callable[..., np.ndarray]


def strategy_context(strategy: Any, params: dict[str, Any], X_labeled: Any, y_labeled: Any,
                     validation: tuple[Any, Any, Any] | None, seed: int, round_: int) -> dict[str, Any]:
    """What ``strategy.score`` gets besides the model and the pool: labels, rng, validation
    data (for strategies that need it) and the strategy's own options."""
    ctx: dict[str, Any] = {"X_labeled": X_labeled, "y_labeled": y_labeled,
                           "rng": rng(seed, round_, CONTEXT)}
    if "validation" in strategy.needs:
        X_val, y_val = (None, None) if validation is None else validation[:2]
        if X_val is None:
            raise ValueError(
                f"strategy {strategy.name!r} needs a validation split: set "
                "data.validation_size in the config or label more items first"
            )
        ctx.update(X_val=X_val, y_val=y_val)
    return {**ctx, **params}


def score(strategy: Any, model: Any, X_pool: Any, context: dict[str, Any],
          scoring: Scoring | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """(scores, timing and the strategy's own report, e.g. the portfolio's arm)."""
    t0 = time.perf_counter()
    if scoring is None:
        scores = strategy.score(model, X_pool, **context)
    else:
        scores = scoring(strategy, model, X_pool, **context)
    report: dict[str, float] = {"score_seconds": time.perf_counter() - t0}
    if strategy.report is not None:  # e.g. the portfolio's arm and arm probabilities
        report.update(strategy.report())
    return np.asarray(scores), report
