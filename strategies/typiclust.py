"""TypiClust: the most typical item of the largest uncovered cluster (Hacohen et al., 2022).

The pool and the labeled set together are split by k-means into |L| + b clusters (b the
batch size); a cluster that holds a labeled item is covered. Each pick takes the largest
uncovered cluster and its most typical item, typicality(x) = 1 / mean distance of x to its
``k_neighbors`` nearest neighbours within the cluster; the cluster is then covered. When
every cluster is covered the next pick is uniform among the items left. Labels and the
model are not used, so it also picks an initial set (``loop.initial.strategy``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strategies._order import n_picks, order_scores
from strategies.base import StrategyOptions
from strategies.registry import strategy


class TypiClustOptions(StrategyOptions):
    """TypiClust's option: the neighbourhood of the typicality."""

    k_neighbors: int = Field(5, ge=1, strict=True, description="neighbours of the typicality")


def typicality(X: np.ndarray, k_neighbors: int = 5) -> np.ndarray:
    """1 / mean distance to the ``k_neighbors`` nearest other rows (a single row: 1).

    Examples
    --------
    >>> import numpy as np
    >>> typicality(np.array([[0.0], [1.0], [3.0]]), 1).round(6).tolist()
    [1.0, 1.0, 0.5]
    """
    from sklearn.neighbors import NearestNeighbors
    n = X.shape[0]
    if n == 1:
        return np.ones(1)
    k = min(k_neighbors, n - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return 1.0 / (dist[:, 1:].mean(axis=1) + 1e-12)  # column 0 is the row itself


def typiclust_select(
    X: Any,
    labeled: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    k_neighbors: int = 5,
) -> np.ndarray:
    """Positions (into ``X``) of ``k`` TypiClust picks among the rows not ``labeled``.

    Parameters
    ----------
    X : array-like, shape (n, d)
        All items: labeled and candidates.
    labeled : numpy.ndarray of bool, shape (n,)
    k : int
        Number of picks, at most the number of candidates.
    rng : numpy.random.Generator
        Seeds k-means and the uniform picks once every cluster is covered.
    k_neighbors : int
        Neighbours of the typicality.
    """
    from sklearn.cluster import KMeans
    X = np.asarray(X, dtype=np.float64)
    labeled = np.asarray(labeled, dtype=bool)
    n_clusters = min(int(labeled.sum()) + k, X.shape[0])
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=int(rng.integers(2**31)))
    cluster = km.fit_predict(X)
    size = np.bincount(cluster, minlength=n_clusters).astype(float)
    size[np.unique(cluster[labeled])] = 0.0
    free = ~labeled
    order = []
    for _ in range(k):
        if size.max() == 0:
            i = int(rng.choice(np.flatnonzero(free)))
        else:
            c = int(np.argmax(size))
            members = np.flatnonzero(cluster == c)
            typ = typicality(X[members], k_neighbors)
            typ[~free[members]] = -np.inf
            i = int(members[np.argmax(typ)])
            size[c] = 0.0
        order.append(i)
        free[i] = False
    return np.asarray(order, dtype=np.int64)


@strategy(
    "typiclust",
    "TypiClust: the most typical item of the largest uncovered k-means cluster.",
    options=TypiClustOptions,
)
def typiclust_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    rng: np.random.Generator | None = None,
    k_neighbors: int = 5,
    **context: Any,
) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    n = X_pool.shape[0]
    X_pool = np.asarray(X_pool, dtype=np.float64)
    m = 0 if X_labeled is None else X_labeled.shape[0]
    X_all = X_pool if m == 0 else np.vstack([np.asarray(X_labeled, dtype=np.float64), X_pool])
    labeled = np.arange(m + n) < m
    picks = typiclust_select(X_all, labeled, n_picks(context, n), rng, k_neighbors=k_neighbors)
    return order_scores(picks - m, n)
