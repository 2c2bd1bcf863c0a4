"""Core-set: ask where the labeled set covers the feature space worst.

The score of a pool item is its Euclidean distance to the nearest labeled item. One item at a
time that is the farthest-first rule; a batch uses the greedy k-center rule
(:func:`alloop.engine.select.kcenter_greedy`), which also counts the items already chosen for
the batch as covered (Sener & Savarese, 2018). The model is not used.

The strategy declares ``scores_are_labeled_distance``: its scores are the distances k-center
starts from, so a round hands them to the batch rule instead of computing them twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.registry import strategy


def nearest_labeled_distance(X_pool: Any, X_labeled: Any) -> np.ndarray:
    """Euclidean distance from every pool row to its nearest labeled row.

    Dense arrays and scipy sparse matrices are both accepted; the pairwise distances are
    computed in chunks (scikit-learn's ``working_memory``), never as a full n × m matrix.

    Parameters
    ----------
    X_pool : array-like or sparse matrix, shape (n, d)
    X_labeled : array-like or sparse matrix, shape (m, d), m ≥ 1

    Returns
    -------
    numpy.ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> nearest_labeled_distance(np.array([[0.0, 3.0], [1.0, 0.0]]), np.array([[0.0, -1.0]]))
    array([4.        , 1.41421356])
    """
    from sklearn.metrics import pairwise_distances_argmin_min
    if X_pool.shape[1] != X_labeled.shape[1]:
        raise ValueError(
            f"the pool has {X_pool.shape[1]} features but the labeled set has "
            f"{X_labeled.shape[1]}; both must come from the same feature map"
        )
    _, dist = pairwise_distances_argmin_min(X_pool, X_labeled, metric="euclidean")
    return np.asarray(dist, dtype=np.float64)


@strategy(
    "coreset",
    "Core-set: distance to the nearest labeled item; batches by greedy k-center.",
    batch="kcenter",
    scores_are_labeled_distance=True,
)
def coreset_scores(model: Any, X_pool: Any, *, X_labeled: Any = None, **_: Any) -> np.ndarray:
    # With nothing labeled every item is equally uncovered; k-center then spreads the batch.
    if X_labeled is None or X_labeled.shape[0] == 0:
        return np.zeros(X_pool.shape[0])
    return nearest_labeled_distance(X_pool, X_labeled)
