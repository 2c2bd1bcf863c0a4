"""Turn pool scores into a batch: top-k, diversity-aware top-k, or k-center greedy.

Features may be dense arrays, scipy sparse matrices or torch tensors. Sparse features stay
sparse: the k-center distances come from row norms and sparse dot products,
‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², one pool-length vector per pick, and the distances to the
labeled set are reduced in row chunks (scikit-learn's ``pairwise_distances_argmin_min``); the
k-means of the diverse rule runs on the CSR rows of the candidates. Nothing of pool size is
ever densified.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

BATCH_RULES = ("topk", "diverse", "kcenter")

Rows = np.ndarray | sp.csr_matrix


def select_batch(
    scores: np.ndarray,
    k: int,
    rule: str = "topk",
    *,
    X_pool: Any = None,
    X_labeled: Any = None,
    rng: np.random.Generator | None = None,
    oversample: int = 5,
) -> np.ndarray:
    """Indices of ``k`` pool rows to query.

    * ``topk``: the k highest scores; ties go to the lower position, so it is deterministic.
    * ``diverse``: cluster the ``oversample·k`` best candidates into k groups (k-means on the
      features) and take the best-scored item of each group, so a batch does not spend its
      labels on near-duplicates. Should k-means find fewer than k distinct groups (duplicate
      rows), the batch is filled with the next best candidates.
    * ``kcenter``: greedy k-center on the features, starting from the labeled set (core-set);
      ``scores`` only break ties between equally far items (with nothing labeled, the first
      pick is the best-scored item).

    Parameters
    ----------
    scores : numpy.ndarray, shape (n,)
        One score per pool row; higher = ask first.
    k : int
        Batch size, ``1 ≤ k ≤ n``.
    rule : {"topk", "diverse", "kcenter"}
    X_pool : array-like, scipy sparse matrix or torch tensor, shape (n, d)
        Pool features; needed by ``diverse`` and ``kcenter``.
    X_labeled : array-like, scipy sparse matrix or torch tensor, shape (m, d), optional
        Features of the labeled items, the initial centers of ``kcenter``.
    rng : numpy.random.Generator, optional
        Seeds the k-means of ``diverse`` (one draw); ``None`` uses seed 0.
    oversample : int
        ``diverse`` clusters the ``oversample·k`` best-scored candidates.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        Distinct pool positions, in the order the rule picked them (score order for ``topk``
        and ``diverse``).

    Examples
    --------
    >>> import numpy as np
    >>> select_batch(np.array([0.2, 0.9, 0.9, 0.1]), 2).tolist()
    [1, 2]
    >>> X = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> select_batch(np.array([4.0, 3.0, 2.0, 1.0]), 2, "kcenter", X_pool=X).tolist()
    [0, 3]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, one per pool item; got shape {scores.shape}")
    n = scores.shape[0]
    if callable(rule):  # a rule object, e.g. alloop.multiuser.UserQuota (a per-user quota)
        _check_batch_size(k, n)
        return np.asarray(rule(scores, k, X_pool=X_pool, rng=rng), dtype=np.int64)
    if rule not in BATCH_RULES:
        raise ValueError(f"unknown batch rule {rule!r}; expected one of {BATCH_RULES}")
    _check_batch_size(k, n)
    if np.isnan(scores).any():
        raise ValueError(
            f"scores contain {int(np.isnan(scores).sum())} NaN values; a strategy must give a "
            "finite score to every pool item"
        )
    if rule == "topk" or k == n:
        return top_positions(scores, k)
    if X_pool is None:
        raise ValueError(f"batch rule {rule!r} needs the pool features; pass X_pool=")
    if X_pool.shape[0] != n:
        raise ValueError(
            f"X_pool has {X_pool.shape[0]} rows but there are {n} scores; pass the features "
            "of exactly the scored items"
        )
    if rule == "diverse":
        if (
            not isinstance(oversample, int | np.integer)
            or isinstance(oversample, bool)
            or oversample < 1
        ):
            raise ValueError(f"oversample must be a positive integer; got {oversample!r}")
        return _diverse(top_positions(scores, min(n, int(oversample) * k)), k, X_pool, rng)
    return kcenter_greedy(X_pool, k, X_labeled, scores=scores)


def kcenter_greedy(
    X: Any, k: int, X_centers: Any | None = None, *, scores: np.ndarray | None = None
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

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The picks, in order.

    Notes
    -----
    Squared distances are computed as ‖x‖² − 2 x·c + ‖c‖² (clipped at 0), so they carry a
    rounding error of order 1e-16·(‖x‖² + ‖c‖²); features with a large common offset are best
    centred first. Each pick costs one product of the pool with a row.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [9.0, 0.0]])
    >>> kcenter_greedy(X, 2, X_centers=np.array([[0.5, 0.0]])).tolist()
    [3, 2]
    """
    X = _as_rows(X, "X")
    n = X.shape[0]
    _check_batch_size(k, n)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},), one per row of X; got {scores.shape}")
    from sklearn.utils.extmath import row_norms

    sq_norms = row_norms(X, squared=True)
    C = None if X_centers is None else _as_rows(X_centers, "X_centers")
    if C is not None and C.shape[0] > 0:
        dist = nearest_center_sq_distance(X, C)
    else:
        dist = np.full(n, np.inf)
    chosen = np.empty(k, dtype=np.int64)
    for j in range(k):
        i = _farthest(dist, scores)
        chosen[j] = i
        c = X[i].toarray().ravel() if sp.issparse(X) else X[i]
        to_c = X @ c
        to_c *= -2.0
        to_c += sq_norms
        to_c += sq_norms[i]
        np.maximum(to_c, 0.0, out=to_c)
        np.minimum(dist, to_c, out=dist)
        dist[i] = -np.inf  # never picked twice, however small its rounding-error distance
    return chosen


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

    X = _as_rows(X, "X")
    C = _as_rows(X_centers, "X_centers")
    if C.shape[1] != X.shape[1]:
        raise ValueError(
            f"the pool has {X.shape[1]} features but the centers (labeled set) have "
            f"{C.shape[1]}; both must come from the same feature map"
        )
    if C.shape[0] == 0:
        raise ValueError("X_centers is empty; pass at least one center row")
    # one format for both, so the chunked CSR/dense reduction of scikit-learn applies
    C = sp.csr_matrix(C) if sp.issparse(X) else (C.toarray() if sp.issparse(C) else C)
    _, sq = pairwise_distances_argmin_min(X, C, metric="euclidean", metric_kwargs={"squared": True})
    return np.maximum(np.asarray(sq, dtype=np.float64), 0.0)


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first; ties go to the lower position.

    The same as ``np.argsort(-scores, kind="stable")[:k]`` in O(n + c log c) time, c the number
    of scores at least the k-th highest (a partition finds it; only those are sorted).

    Examples
    --------
    >>> import numpy as np
    >>> top_positions(np.array([0.5, 2.0, 0.5, 1.0, 0.5]), 3).tolist()
    [1, 3, 0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores, kind="stable").astype(np.int64)
    kth = np.partition(scores, n - k)[n - k]  # the k-th highest score
    candidates = np.flatnonzero(scores >= kth)  # in position order, so a stable sort keeps it
    best = np.argsort(-scores[candidates], kind="stable")[:k]
    return candidates[best].astype(np.int64)


def _diverse(
    top: np.ndarray, k: int, X_pool: Any, rng: np.random.Generator | None
) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    m = top.shape[0]
    if m == k:
        return top.astype(np.int64)
    seed = int(rng.integers(2**31 - 1)) if rng is not None else 0
    candidates = _as_rows(_take_rows(X_pool, top), "X_pool")  # CSR rows stay CSR
    with warnings.catch_warnings():
        # fewer distinct rows than k: handled below by filling the batch
        warnings.simplefilter("ignore", ConvergenceWarning)
        groups = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(candidates)
    _, first = np.unique(groups, return_index=True)  # best-scored member of each group
    picks = np.sort(first)
    if picks.size < k:
        rest = np.setdiff1d(np.arange(m), picks, assume_unique=True)
        picks = np.concatenate([picks, rest[: k - picks.size]])
    return top[picks].astype(np.int64)


def _farthest(dist: np.ndarray, scores: np.ndarray | None) -> int:
    i = int(np.argmax(dist))
    if scores is not None:
        ties = np.flatnonzero(dist == dist[i])
        if ties.size > 1:
            i = int(ties[np.argmax(scores[ties])])  # first maximum: lower position wins
    return i


def _check_batch_size(k: Any, n: int) -> None:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"batch size must be a positive integer; got {k!r}")
    if n == 0:
        raise ValueError("the pool is empty: no items left to select")
    if k > n:
        raise ValueError(
            f"batch size {k} is larger than the {n} unlabeled items left; lower loop.batch_size "
            "or stop the loop"
        )


def _take_rows(X: Any, index: np.ndarray) -> Any:
    if isinstance(X, torch.Tensor):
        return X.index_select(0, torch.as_tensor(index, dtype=torch.long))
    if sp.issparse(X):
        return sp.csr_matrix(X)[index]
    return np.asarray(X)[index]


def _as_rows(X: Any, name: str) -> Rows:
    """``X`` as float64 rows: an ndarray, or CSR when sparse (a copy only if format or dtype
    differ; never densified)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        if X.layout == torch.strided:
            X = X.numpy()
        else:
            coo = X.to_sparse_coo().coalesce()
            row, col = coo.indices().numpy()
            X = sp.coo_matrix((coo.values().numpy(), (row, col)), shape=tuple(coo.shape))
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
    else:
        X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, n_features); got shape {X.shape}")
    return X
