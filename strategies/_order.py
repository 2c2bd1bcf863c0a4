"""Batch strategies as scores: a greedy pick order turned into scores that top-k reproduces.

BADGE, BatchBALD, TypiClust and ProbCover choose a batch jointly, one greedy pick after the
other. Their scorers compute the first ``n_instances`` picks (``n_instances`` is in the
loop's context) and return :func:`order_scores`, so the default ``topk`` rule takes exactly
those picks, in order. Without ``n_instances`` in the context a single pick is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def order_scores(order: Any, n: int) -> np.ndarray:
    """Scores ``k, k−1, …, 1`` for the picks in ``order`` (first = highest) and 0 elsewhere.

    Examples
    --------
    >>> order_scores([2, 0], 4).tolist()
    [1.0, 0.0, 2.0, 0.0]
    """
    order = np.asarray(order, dtype=np.int64)
    scores = np.zeros(n)
    scores[order] = np.arange(order.size, 0, -1, dtype=np.float64)
    return scores


def n_picks(context: Mapping[str, Any], n: int) -> int:
    """The number of picks to make: the context's ``n_instances`` (default 1), at most ``n``."""
    k = int(context.get("n_instances") or 1)
    if k < 1:
        raise ValueError(f"n_instances must be a positive integer; got {k}")
    return min(k, n)
