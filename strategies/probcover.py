"""ProbCover: greedy maximum coverage by balls of radius δ (Yehuda et al., 2022).

Each item covers the items within distance δ of it. The labeled set covers its balls; each
pick is the candidate whose ball holds the most items not covered yet, which it then covers.
When ``delta`` is not given it is chosen as in the paper: the largest δ of a grid whose balls
stay ``alpha``-pure with respect to a k-means clustering into ``n_classes`` clusters (the
share of items whose ball holds no item of another cluster is at least ``alpha``). Labels and
the model are not used, so it also picks an initial set (``loop.initial.strategy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from strategies._order import n_picks, order_scores
from strategies.base import StrategyOptions
from strategies.registry import strategy

#: the δ grid of the purity rule
DELTAS = tuple(np.round(np.arange(0.2, 2.2, 0.2), 10))


class ProbCoverOptions(StrategyOptions):
    """ProbCover's options: the radius, or how to choose it."""

    delta: float | None = Field(None, gt=0, description="ball radius (default: the purity rule)")
    n_classes: int | None = Field(
        None, ge=2, strict=True, description="clusters of the purity rule (default: the classes)"
    )
    alpha: float = Field(0.95, gt=0, lt=1, description="purity the radius must keep")


def ball_graph(X: Any, delta: float) -> sp.csr_matrix:
    """A[i, j] = 1 when ‖x_i − x_j‖ ≤ δ (sparse, self-loops included)."""
    from sklearn.neighbors import radius_neighbors_graph
    A = radius_neighbors_graph(X, delta, mode="connectivity", include_self=True)
    return sp.csr_matrix(A, dtype=np.float64)


def purity_delta(
    X: Any, n_classes: int, rng: np.random.Generator, *, deltas: Sequence[float] = DELTAS,
    alpha: float = 0.95,
) -> float:
    """The largest δ of ``deltas`` (ascending) before ball purity first drops below ``alpha``.

    The smallest δ is returned when even it is impure.
    """
    from sklearn.cluster import KMeans
    cluster = KMeans(n_clusters=n_classes, n_init=1, random_state=int(rng.integers(2**31))).fit_predict(X)
    best = float(deltas[0])
    for delta in deltas:
        A = ball_graph(X, delta).tocoo()
        impure = np.zeros(X.shape[0], dtype=bool)
        impure[A.row[cluster[A.row] != cluster[A.col]]] = True
        if 1.0 - impure.mean() < alpha:
            break
        best = float(delta)
    return best


def probcover_select(X: Any, labeled: np.ndarray, k: int, delta: float) -> np.ndarray:
    """Positions of ``k`` greedy max-coverage picks among the rows not ``labeled``.

    Ties go to the lower position.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [9.0], [9.1]])
    >>> probcover_select(X, np.zeros(6, bool), 2, 0.15).tolist()
    [1, 4]
    """
    A = ball_graph(X, delta)
    labeled = np.asarray(labeled, dtype=bool)
    covered = np.asarray(A[np.flatnonzero(labeled)].sum(axis=0)).ravel() > 0
    free = ~labeled
    order = []
    for _ in range(k):
        gain = A @ (~covered).astype(np.float64)
        gain[~free] = -1.0
        i = int(np.argmax(gain))
        order.append(i)
        free[i] = False
        covered[A[i].indices] = True
    return np.asarray(order, dtype=np.int64)


@strategy(
    "probcover",
    "ProbCover: greedy max coverage by δ-balls (δ from a purity rule unless given).",
    options=ProbCoverOptions,
)
def probcover_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    delta: float | None = None,
    n_classes: int | None = None,
    alpha: float = 0.95,
    **context: Any,
) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    n = X_pool.shape[0]
    X_pool = np.asarray(X_pool, dtype=np.float64)
    m = 0 if X_labeled is None else X_labeled.shape[0]
    X_all = X_pool if m == 0 else np.vstack([np.asarray(X_labeled, dtype=np.float64), X_pool])
    if delta is None:
        if n_classes is None:  # the model's classes, else those labeled so far (at least 2)
            classes = getattr(model, "classes_", None)
            if classes is None:
                classes = [] if y_labeled is None else np.unique(y_labeled)
            n_classes = max(len(classes), 2)
        delta = purity_delta(X_all, int(n_classes), rng, alpha=alpha)
    picks = probcover_select(X_all, np.arange(m + n) < m, n_picks(context, n), float(delta))
    return order_scores(picks - m, n)
