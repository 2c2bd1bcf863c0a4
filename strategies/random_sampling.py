"""Random sampling: the baseline every strategy is compared against."""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.registry import strategy


@strategy("random", "Uniformly random items (the baseline).")
def random_scores(model: Any, X_pool: Any, *, rng: np.random.Generator | None = None, **_: Any) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.random(X_pool.shape[0])
