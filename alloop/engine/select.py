"""Turn pool scores into a batch: top-k, diversity-aware top-k, or k-center greedy.

Features may be dense arrays, scipy sparse matrices or torch tensors. Sparse features stay
sparse: the k-center rule (:mod:`alloop.engine.kcenter`, a lazy exact greedy) reduces the
distances to the labeled set in row chunks and then only touches the rows that can still be
the farthest; the k-means of the diverse rule runs on the CSR rows of the candidates. Nothing
of pool size is ever densified.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from alloop.engine.kcenter import kcenter_greedy, nearest_center_sq_distance
from alloop.engine.rows import as_rows, check_batch_size

BATCH_RULES = ("topk", "diverse", "kcenter")

__all__ = ["BATCH_RULES", "kcenter_greedy", "nearest_center_sq_distance", "select_batch",
           "top_positions"]


def select_batch(
    scores: np.ndarray,
    k: int,
    rule: str = "topk",
    *,
    X_pool: Any = None,
    X_labeled: Any = None,
    rng: np.random.Generator | None = None,
    oversample: int = 5,
    center_distance: np.ndarray | None = None,
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
    center_distance : numpy.ndarray, shape (n,), optional
        ``kcenter`` only: the distance of every pool row to its nearest labeled row, when the
        caller has it already (the core-set strategy's scores are exactly that), so it is not
        computed again; see :func:`alloop.engine.kcenter.kcenter_greedy`. The picks do not
        depend on it.

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
        check_batch_size(k, n)
        return np.asarray(rule(scores, k, X_pool=X_pool, rng=rng), dtype=np.int64)
    if rule not in BATCH_RULES:
        raise ValueError(f"unknown batch rule {rule!r}; expected one of {BATCH_RULES}")
    check_batch_size(k, n)
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
    return kcenter_greedy(X_pool, k, X_labeled, scores=scores, center_distance=center_distance)


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
    candidates = as_rows(_take_rows(X_pool, top), "X_pool")  # CSR rows stay CSR
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


def _take_rows(X: Any, index: np.ndarray) -> Any:
    if isinstance(X, torch.Tensor):
        return X.index_select(0, torch.as_tensor(index, dtype=torch.long))
    if sp.issparse(X):
        return sp.csr_matrix(X)[index]
    return np.asarray(X)[index]
