"""Density-weighted uncertainty: uncertainty × information density (Settles & Craven, 2008).

score(x) = H[p(y | x)] · ρ(x)^β with the predictive entropy H and the information density
ρ(x) = (1/n) Σ_u 1 / (1 + ‖x − u‖) over the pool (modAL's ``information_density``). Dense
regions count more, so outliers that are uncertain only because they are odd come later.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strategies.base import StrategyOptions
from strategies.registry import strategy
from strategies.uncertainty import predictive_entropy


class DensityOptions(StrategyOptions):
    """The weight of the density."""

    beta: float = Field(1.0, ge=0, description="exponent β of the information density")


def information_density(X: Any) -> np.ndarray:
    """ρ(x) = mean over the rows u of ``X`` of 1 / (1 + ‖x − u‖), computed in row chunks.

    Examples
    --------
    >>> import numpy as np
    >>> information_density(np.array([[0.0], [1.0]])).tolist()
    [0.75, 0.75]
    """
    from sklearn.metrics import pairwise_distances_chunked
    parts = [
        (1.0 / (1.0 + D)).mean(axis=1)
        for D in pairwise_distances_chunked(X, metric="euclidean")
    ]
    return np.concatenate(parts)


@strategy(
    "density-weighted",
    "Predictive entropy times information density over the pool, H·ρ^β (Settles & Craven).",
    needs=("classification", "proba"),
    options=DensityOptions,
)
def density_weighted_scores(model: Any, X_pool: Any, *, beta: float = 1.0, **_: Any) -> np.ndarray:
    return predictive_entropy(model, X_pool) * information_density(X_pool) ** float(beta)
