"""Greedy k-center (core-set batches), lazily: a stale distance is an upper bound.

The nearest-center distance of a row only decreases as centers are added, so the value a row
had before the latest picks bounds its current value from above. :func:`kcenter_greedy` sorts
the rows once by their distance to the initial centers (the labeled set), in growing
``argpartition`` blocks, and for each pick walks that order in vectorised chunks, computing the
exact current distance of the rows it reaches, until the next row's bound is below the best
exact value found (rows reached are kept current with each later pick). Rows the walk never
reaches are not touched after the first pass, so the k per-pick passes over the pool of the
plain greedy disappear; the only pool-sized work is the distance to the initial centers, which
a caller that already has it (the core-set strategy's scores, the loop's carried distances)
can hand over as ``center_distance``. Without it, any upper bound will do: the distance to
the first 16 centers bounds the distance to all of them, so the cold call measures that, and
the rest of the centers over the whole pool only when the walk would otherwise reach too many
rows (:func:`_progressive_bound`).

The initial distances only order and prune the walk: every compared value is recomputed
(``‖x‖² − 2 x·c + ‖c‖²``, the products by BLAS or scipy's sparse product), and the bounds are
widened by an allowance above the worst-case float64 rounding of both computations
(16·(d + 8)·ε relative to ‖x‖² + ‖c‖²), so the picks are the plain greedy's, whoever computed
the initial distances. Ties resolve as the plain greedy's do: the farthest row, then the higher
score, then the lower position.

Memory: two pool-length vectors (the bounds and the walk order) plus chunks bounded by
``_BLOCK`` floats; nothing n × m or n × n, so 10⁶ rows need a few tens of MB beyond the pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from alloop.engine.rows import Rows, as_rows, check_batch_size

#: floats per temporary block of differences (dense) or cross products (sparse): 2 MB
_BLOCK = 1 << 18


def kcenter_greedy(
    X: Any,
    k: int,
    X_centers: Any | None = None,
    *,
    scores: np.ndarray | None = None,
    center_distance: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy k-center: repeatedly take the row farthest from every chosen or center row.

    Parameters
    ----------
    X : array-like, scipy sparse matrix or torch tensor, shape (n, d)
        Candidate rows. Sparse input is never densified.
    k : int
        Number of rows to pick, ``1 ≤ k ≤ n``.
    X_centers : same kinds as ``X``, shape (m, d), optional
        Rows already covered (the labeled set). ``None`` or m = 0: every row starts infinitely
        far, so the first pick is decided by ``scores`` (or is row 0).
    scores : numpy.ndarray, shape (n,), optional
        Tie-break between equally far rows: the higher score wins, then the lower position.
    center_distance : numpy.ndarray, shape (n,), optional
        The Euclidean distance of every row of ``X`` to its nearest row of ``X_centers``, when
        the caller has it already (the core-set scores), so it is not computed again. It only
        orders and prunes the search (every compared distance is recomputed exactly), so it
        must be right up to float64 rounding, not bit for bit; a value found too small for a
        row the search reaches raises ``ValueError``. Ignored when there are no centers.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The picks, in order.

    Notes
    -----
    The picks equal the plain greedy's (recompute every distance at every pick) in exact
    arithmetic, ties included. A compared squared distance is ‖x‖² − 2 x·c + ‖c‖² (clipped at
    0), whose rounding error is of order 1e-16·(‖x‖² + ‖c‖²); features with a large common
    offset are best centred first. Only the rows whose distance can still be the largest are
    touched after the first pass (see the module; without ``center_distance`` that pass may use
    only the first 16 centers); with many exactly equal distances (every
    tied row must be compared) that can be most of the pool, each pick then costs one pass
    over the rows reached, as the plain greedy's does.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [9.0, 0.0]])
    >>> kcenter_greedy(X, 2, X_centers=np.array([[0.5, 0.0]])).tolist()
    [3, 2]
    >>> kcenter_greedy(X, 2, X_centers=np.array([[0.5, 0.0]]),
    ...                center_distance=np.array([0.5, 0.5, 3.5, 8.5])).tolist()
    [3, 2]
    """
    X = as_rows(X, "X")
    n = X.shape[0]
    check_batch_size(k, n)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},), one per row of X; got {scores.shape}")
    C = None if X_centers is None else as_rows(X_centers, "X_centers")
    if C is not None and C.shape[0] > 0:
        _check_features(X, C)
        C = _like(X, C)
    else:
        C = None
    chosen: list[int] = []
    if C is None:  # every row infinitely far: the best score (lowest position) starts
        chosen.append(0 if scores is None else int(np.argmax(scores)))
        C, center_distance = X[chosen], None
    if center_distance is None:
        bound = _progressive_bound(X, k, C)
    else:
        center_distance = np.asarray(center_distance, dtype=np.float64)
        if center_distance.shape != (n,) or not np.all(np.isfinite(center_distance)):
            raise ValueError(
                f"center_distance must be {n} finite distances, one per row of X; got shape "
                f"{center_distance.shape}"
            )
        bound = np.square(center_distance)
    # widen by the rounding of whoever computed the bound and of the exact values: both
    # within γ(‖x‖² + ‖c‖²), and ‖x‖² ≤ 2‖x − c‖² + 2‖c‖²
    gamma = 16.0 * (X.shape[1] + 8) * np.finfo(np.float64).eps
    c_norm = float(_row_sq_norms(C).max())
    bound *= 1.0 + 2.0 * gamma
    bound += 3.0 * gamma * c_norm + np.finfo(np.float64).tiny
    return _lazy_greedy(X, k, C, bound, scores, chosen)


def _lazy_greedy(X: Rows, k: int, C: Rows, bound: np.ndarray, scores: np.ndarray | None,
                 chosen: list[int]) -> np.ndarray:
    walk = _Descending(bound)
    c2 = _row_sq_norms(C)
    rows = np.empty(0, dtype=np.int64)  # rows reached so far
    norms = np.empty(0)  # their squared norms
    value = np.empty(0)  # their exact distance to every center so far; -inf once picked
    for i in chosen:  # a first pick made without centers: already covered
        walk.bound[i] = -np.inf
    while len(chosen) < k:
        best = value.max(initial=-np.inf)
        chunk = 32
        while walk.peek() >= best:
            new = walk.take(chunk)
            chunk = min(4 * chunk, 8192)
            Xn = X[new]
            n2 = _row_sq_norms(Xn)
            d = _nearest(Xn, n2, C, c2)
            picked = np.isin(new, chosen)
            too_small = d[~picked] > bound[new][~picked]
            if np.any(too_small):
                raise ValueError(
                    "center_distance is smaller than the distance to the nearest center for "
                    f"{int(too_small.sum())} rows; pass the distances of X to X_centers"
                )
            if chosen:
                np.minimum(d, _nearest(Xn, n2, X[chosen], _norms_of(X, chosen)), out=d)
            d[picked] = -np.inf
            rows, norms = np.concatenate([rows, new]), np.concatenate([norms, n2])
            value = np.concatenate([value, d])
            best = max(best, float(d.max()))
        ties = np.flatnonzero(value == best)
        if ties.size > 1:  # the higher score, then the lower position
            by = (rows[ties],) if scores is None else (rows[ties], -scores[rows[ties]])
            ties = ties[np.lexsort(by)]
        at = int(ties[0])
        i = int(rows[at])
        chosen.append(i)
        value[at] = -np.inf  # never picked twice, however small its distance
        live = np.flatnonzero(np.isfinite(value))
        if live.size:
            to_i = _nearest(X[rows[live]], norms[live], X[[i]], norms[[at]])
            value[live] = np.minimum(value[live], to_i)
    return np.asarray(chosen, dtype=np.int64)


def _norms_of(X: Rows, index: list[int]) -> np.ndarray:
    """Squared norms of the rows ``index`` of ``X``."""
    return _row_sq_norms(X[index])


def _progressive_bound(X: Rows, k: int, C: Rows) -> np.ndarray:
    """Upper bounds of the rows' squared distances to ``C``: the distances to its first s rows,
    first s = 16, then all m unless the walk would reach few enough rows.

    The distance to a subset of the centers bounds the distance to all of them from above, and
    the walk compares exact distances, so any s gives the same picks; s only trades the pool
    pass (n·s products) against the rows the walk must compare with all m centers (r·m, counted
    four times over). r is estimated from the exact distances of the k + 32 rows with the
    largest bounds.
    """
    n, m = X.shape[0], C.shape[0]
    x2, c2 = _row_sq_norms(X), _row_sq_norms(C)
    s = min(m, 16)
    bound = _nearest(X, x2, C[:s], c2[:s])
    while s < m:
        top = np.argpartition(-bound, min(n, k + 32) - 1)[: k + 32] if n > k + 32 else np.arange(n)
        exact = _nearest(X[top], x2[top], C, c2)
        floor = np.partition(exact, exact.size - min(k, exact.size))[exact.size - min(k, exact.size)]
        reach = int(np.count_nonzero(bound >= floor))
        more = m
        # a reached row costs more than its m products (chunks, the per-pick updates): only
        # stop refining when the walk is clearly the cheaper
        if 4 * reach * m <= n * (more - s):
            break
        np.minimum(bound, nearest_center_sq_distance(X, C[s:more]), out=bound)
        s = more
    return bound


class _Descending:
    """Positions in descending ``bound`` order, produced in growing argpartition blocks."""

    def __init__(self, bound: np.ndarray) -> None:
        self.bound = bound
        self.rest = np.arange(bound.shape[0])
        self.block = np.empty(0, dtype=np.int64)
        self.at = 0
        self.size = 1024

    def _refill(self) -> bool:
        if self.rest.size == 0:
            return False
        c = min(self.size, self.rest.size)
        self.size *= 4
        if c < self.rest.size:
            part = np.argpartition(-self.bound[self.rest], c - 1)
            top, self.rest = self.rest[part[:c]], self.rest[part[c:]]
        else:
            top, self.rest = self.rest, self.rest[:0]
        self.block = top[np.argsort(-self.bound[top], kind="stable")]
        self.at = 0
        return True

    def peek(self) -> float:
        """The bound of the next position, -inf when none is left."""
        if self.at == self.block.size and not self._refill():
            return -np.inf
        return float(self.bound[self.block[self.at]])

    def take(self, count: int) -> np.ndarray:
        """Up to ``count`` next positions (at least one while any is left)."""
        if self.at == self.block.size:
            self._refill()
        out = self.block[self.at : self.at + count]
        self.at += out.size
        return out


def nearest_center_sq_distance(X: Any, X_centers: Any) -> np.ndarray:
    """Squared Euclidean distance from every row of ``X`` to its nearest row of ``X_centers``.

    Reduced in row chunks (scikit-learn's ``working_memory``), never as a full n × m matrix;
    sparse input stays sparse.

    Examples
    --------
    >>> import numpy as np
    >>> nearest_center_sq_distance(np.array([[0.0, 3.0], [1.0, 0.0]]), np.array([[0.0, -1.0]]))
    array([16.,  2.])
    """
    from sklearn.metrics import pairwise_distances_argmin_min

    X = as_rows(X, "X")
    C = as_rows(X_centers, "X_centers")
    _check_features(X, C)
    if C.shape[0] == 0:
        raise ValueError("X_centers is empty; pass at least one center row")
    _, sq = pairwise_distances_argmin_min(X, _like(X, C), metric="euclidean",
                                          metric_kwargs={"squared": True})
    return np.maximum(np.asarray(sq, dtype=np.float64), 0.0)


def _check_features(X: Rows, C: Rows) -> None:
    if C.shape[1] != X.shape[1]:
        raise ValueError(
            f"the pool has {X.shape[1]} features but the centers (labeled set) have "
            f"{C.shape[1]}; both must come from the same feature map"
        )


def _like(X: Rows, C: Rows) -> Rows:
    """``C`` in ``X``'s format (CSR for a sparse pool, dense otherwise)."""
    return sp.csr_matrix(C) if sp.issparse(X) else (C.toarray() if sp.issparse(C) else C)


def _row_sq_norms(A: Rows) -> np.ndarray:
    if sp.issparse(A):
        return np.asarray(A.multiply(A).sum(axis=1), dtype=np.float64).ravel()
    return np.einsum("ij,ij->i", A, A)


def _nearest(A: Rows, a2: np.ndarray, B: Rows, b2: np.ndarray) -> np.ndarray:
    """Squared distance of every row of ``A`` to its nearest row of ``B`` (same format; ``a2``,
    ``b2`` their squared norms) as ‖a‖² − 2 a·b + ‖b‖², clipped at 0, in blocks of at most
    ``_BLOCK`` floats."""
    r, m = A.shape[0], B.shape[0]
    out = np.full(r, np.inf)
    cols = min(m, 4096)
    step = max(1, _BLOCK // max(1, cols))
    for j in range(0, m, cols):
        Bj, bj = B[j : j + cols], b2[j : j + cols]
        for i in range(0, r, step):
            cross = A[i : i + step] @ Bj.T
            sq = np.asarray(cross.todense()) if sp.issparse(cross) else cross
            sq *= -2.0
            sq += a2[i : i + step, None]
            sq += bj[None, :]
            np.maximum(sq, 0.0, out=sq)
            np.minimum(out[i : i + step], sq.min(axis=1), out=out[i : i + step])
    return out
