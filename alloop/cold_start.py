"""Cold start: choose the initial set from the features alone, and warn when one misses a class.

A random initial set can miss a class entirely (on wine, seeds exist whose 10 random items hold
no "barolo"); every later round then starts from a model that cannot predict that class.
``initial_positions`` picks the set without labels instead:

* ``typiclust``: the most typical item of each of ``size`` k-means clusters
  (:func:`strategies.typiclust.typiclust_select` with nothing labeled);
* ``probcover``: greedy max coverage by δ-balls, δ from the purity rule
  (:mod:`strategies.probcover`);
* ``kmeans``: the item nearest to each of ``size`` k-means centroids.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

INITIAL_STRATEGIES = ("random", "typiclust", "probcover", "kmeans")


class MissingClassWarning(UserWarning):
    """The initial labeled set holds no item of some class."""


def check_initial_strategy(name: str) -> str:
    """``name`` if it is a known initial-set strategy, else a clear error."""
    if name not in INITIAL_STRATEGIES:
        raise ValueError(
            f"unknown initial strategy {name!r}; valid: {', '.join(INITIAL_STRATEGIES)}"
        )
    return name


def kmeans_initial(X: Any, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the rows nearest to each centroid of a k-means with ``size`` clusters.

    A row nearest to two centroids is taken once; the set is filled with the next nearest rows.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances

    X = np.asarray(X, dtype=np.float64)
    km = KMeans(n_clusters=size, n_init=1, random_state=int(rng.integers(2**31))).fit(X)
    D = pairwise_distances(km.cluster_centers_, X)
    chosen: list[int] = []
    for row in D:
        for i in np.argsort(row, kind="stable"):
            if int(i) not in chosen:
                chosen.append(int(i))
                break
    return np.asarray(chosen, dtype=np.int64)


def initial_positions(
    X: Any, size: int, strategy: str, rng: np.random.Generator, n_classes: int | None = None
) -> np.ndarray:
    """``size`` distinct positions of rows of ``X`` chosen by ``strategy`` without labels.

    ``n_classes`` (the number of classes, when known) sets ProbCover's purity clustering.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [10.0], [10.1]])
    >>> sorted(initial_positions(X, 2, "kmeans", np.random.default_rng(0)).tolist()) in ([0, 2], [0, 3], [1, 2], [1, 3])
    True
    """
    check_initial_strategy(strategy)
    n = X.shape[0]
    if not 1 <= size <= n:
        raise ValueError(f"initial = {size} must be between 1 and the pool size {n}")
    if strategy == "random":
        return rng.permutation(n)[:size]
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    if strategy == "kmeans":
        return kmeans_initial(X, size, rng)
    nothing = np.zeros(n, dtype=bool)
    if strategy == "typiclust":
        from strategies.typiclust import typiclust_select

        return typiclust_select(X, nothing, size, rng)
    from strategies.probcover import probcover_select, purity_delta

    delta = purity_delta(X, max(2, n_classes or 2), rng)
    return probcover_select(X, nothing, size, delta)


def missing_classes(labels: Sequence[Any], classes: Sequence[Any]) -> list[Any]:
    """The classes of ``classes`` with no item in ``labels``."""
    present = set(np.asarray(labels, dtype=object).tolist())
    return [c for c in np.asarray(classes).tolist() if c not in present]


def warn_missing_classes(labels: Sequence[Any], classes: Sequence[Any]) -> list[Any]:
    """Warn (:class:`MissingClassWarning`) when the initial set misses a class; return them."""
    missing = missing_classes(labels, classes)
    if missing:
        warnings.warn(
            f"the initial labeled set has no item of class {', '.join(map(repr, missing))}; the "
            "first models cannot predict it. Fix: a larger loop.initial, or "
            "loop.initial: {size: N, strategy: typiclust} (or probcover, kmeans) to pick a "
            "set that covers the feature space",
            MissingClassWarning,
            stacklevel=3,
        )
    return missing
