"""Choosing candidates by their IP-adding scores: Method 1 (every helpful one) or the top k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.influence.ip_adding import Weights, ip_adding_scores
from alloop.models.base import DifferentiableModel


@dataclass(frozen=True)
class SubsetSelection:
    """The chosen candidates.

    Attributes
    ----------
    index : ndarray of int
        Positions of the chosen candidates, highest score first.
    mask : ndarray of bool, shape (n_cand,)
    ids : ndarray
        ``ids[index]`` if candidate ids were given, else ``index``.
    scores : ndarray, shape (n_cand,)
    """

    index: np.ndarray
    mask: np.ndarray
    ids: np.ndarray
    scores: np.ndarray


def subset_mask(scores: Any, budget: int | float | None = None) -> np.ndarray:
    """Which candidates to add.

    Parameters
    ----------
    scores : array-like, shape (n,)
    budget : None, int or float
        ``None``: Method 1, every candidate with score > 0. An int k: the k highest scores
        (ties broken by position). A float in (0, 1]: that fraction of the candidates, rounded.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if budget is None:
        return s > 0
    if isinstance(budget, int | np.integer) and not isinstance(budget, bool):
        k = int(budget)
        if k < 0:
            raise ValueError(f"budget must be a non-negative count; got {budget!r}")
    else:
        fraction = float(budget)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                f"a fractional budget must lie in (0, 1]; got {budget!r} (pass an int for a count)"
            )
        k = int(round(fraction * s.size))
    k = min(k, s.size)
    mask = np.zeros(s.size, dtype=bool)
    mask[np.argsort(-s, kind="stable")[:k]] = True
    return mask


def select_subset(
    model: DifferentiableModel,
    X_cand: Any,
    y_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    budget: int | float | None = None,
    ids: Any | None = None,
    weights: Weights = None,
    method: str = "exact",
    damping: float = 0.0,
) -> SubsetSelection:
    """Score labeled candidates and choose the subset to add (Method 1, or top-k for a budget).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    >>> model = LogisticGLM(s=0.0).fit(X[:20], y[:20])
    >>> chosen = select_subset(model, X[20:40], y[20:40], X[40:], y[40:], budget=5)
    >>> chosen.mask.sum(), chosen.index.shape
    (np.int64(5), (5,))
    """
    scores = ip_adding_scores(
        model, X_cand, y_cand, X_val, y_val, weights=weights, method=method, damping=damping
    ).numpy()
    mask = subset_mask(scores, budget)
    index = np.flatnonzero(mask)
    index = index[np.argsort(-scores[index], kind="stable")]
    if ids is None:
        chosen_ids = index
    else:
        ids = np.asarray(ids)
        if ids.shape[0] != scores.shape[0]:
            raise ValueError(f"got {ids.shape[0]} ids for {scores.shape[0]} candidates")
        chosen_ids = ids[index]
    return SubsetSelection(index=index, mask=mask, ids=chosen_ids, scores=scores)
