"""IP-adding as a query strategy: which pool item would most improve validation predictions.

The IP-adding score of a labeled candidate (arXiv 2504.13586; :mod:`alloop.influence.ip_adding`)
is the first-order, sign-aligned change of the validation predictions if the candidate joined
the training set. A pool item has no label yet, so the score is an expectation over the model's
predictive law p(y | x). The plain mean E_y[score(y)] is identically zero for a likelihood
model (the expected log-likelihood gradient vanishes), so the strategy ranks by the expected
*Method-1 gain* E_y[max(score(y), 0)]: label the item, keep it if its score is positive.

Options (:class:`InfluenceOptions`): ``reduction``, ``weights`` ("sign", "residual" or one
weight per validation point), ``solver`` ("exact", "cg") and ``damping``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from strategies.base import StrategyOptions, check_compatible
from strategies.registry import get, strategy


class InfluenceOptions(StrategyOptions):
    """Options of ``influence`` (see :func:`alloop.influence.ip_adding.expected_scores`)."""

    reduction: Literal["positive", "mean", "abs"] = "positive"
    weights: Literal["sign", "residual"] | list[float] | None = None
    solver: Literal["exact", "cg"] = "exact"
    damping: float = Field(0.0, ge=0.0, strict=True)


@strategy(
    "influence",
    "IP-adding: expected gain E_y[max(score, 0)] of an item's sign-aligned effect on validation predictions.",
    needs=("gradients", "validation", "classification"),
    options=InfluenceOptions,
)
def influence_strategy(
    model: Any,
    X_pool: Any,
    *,
    X_val: Any = None,
    y_val: Any = None,
    reduction: str = "positive",
    weights: Any = None,
    solver: str = "exact",
    damping: float = 0.0,
    **_: Any,
) -> np.ndarray:
    from alloop.influence.ip_adding import expected_scores
    check_compatible(get("influence"), model)
    if X_val is None or y_val is None:
        raise ValueError(
            "the 'influence' strategy scores items by their effect on validation predictions; it "
            "needs a validation split (X_val, y_val). Set the loop's validation fraction > 0 or "
            "pass X_val=..., y_val=..."
        )
    import torch

    if str(getattr(model, "device", "cpu")) != "cpu" or getattr(model, "dtype", None) not in (None, torch.float64):
        raise ValueError(  # alloop.influence computes in float64 on the CPU
            f"the 'influence' strategy runs in float64 on the CPU; {model!r} computes in "
            f"{model.dtype} on {model.device}. Use device='cpu', dtype='float64' for it"
        )
    scores = expected_scores(
        model, X_pool, X_val, y_val, reduction=reduction, weights=weights, method=solver,
        damping=damping,
    )
    return scores.numpy()
