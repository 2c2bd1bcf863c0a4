"""Turn pool scores into a batch: top-k, diversity-aware top-k, or k-center greedy."""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH_RULES = ("topk", "diverse", "kcenter")


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=np.float64)


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

    * ``topk``: the k highest scores (ties broken by position, so it is deterministic).
    * ``diverse``: cluster the ``oversample·k`` best candidates into k groups (k-means on the
      features) and take the best-scored item of each group, so a batch does not spend its
      labels on near-duplicates.
    * ``kcenter``: greedy k-center on the features, starting from the labeled set (core-set);
      ``scores`` are ignored except to break ties.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if rule not in BATCH_RULES:
        raise ValueError(f"unknown batch rule {rule!r}; expected one of {BATCH_RULES}")
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"batch size must be a positive integer; got {k!r}")
    if n == 0:
        raise ValueError("the pool is empty: no items left to select")
    if k > n:
        raise ValueError(
            f"batch size {k} is larger than the {n} unlabeled items left; lower loop.batch_size "
            "or stop the loop"
        )
    order = np.argsort(-scores, kind="stable")
    if rule == "topk" or k == n:
        return order[:k]
    if X_pool is None:
        raise ValueError(f"batch rule {rule!r} needs the pool features")
    if rule == "diverse":
        from sklearn.cluster import KMeans

        m = min(n, oversample * k)
        top = order[:m]
        seed = int(rng.integers(2**31 - 1)) if rng is not None else 0
        groups = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(_dense(X_pool[top]))
        best = [top[groups == g][0] for g in range(k) if np.any(groups == g)]
        rest = [i for i in top if i not in set(best)]
        return np.asarray((best + rest)[:k], dtype=np.int64)
    return kcenter_greedy(_dense(X_pool), k, None if X_labeled is None else _dense(X_labeled))


def kcenter_greedy(X: np.ndarray, k: int, X_centers: np.ndarray | None = None) -> np.ndarray:
    """Greedy k-center: repeatedly take the point farthest from every chosen or labeled point.

    With no labeled points the first pick is row 0 (all distances are infinite; argmax is 0).
    """
    if X_centers is not None and len(X_centers):
        dist = _min_sq_dist(X, X_centers)
    else:
        dist = np.full(X.shape[0], np.inf)
    chosen: list[int] = []
    for _ in range(k):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, ((X - X[i]) ** 2).sum(axis=1))
        dist[chosen] = -1.0
    return np.asarray(chosen, dtype=np.int64)


def _min_sq_dist(X: np.ndarray, C: np.ndarray, block: int = 4096) -> np.ndarray:
    out = np.empty(X.shape[0])
    c2 = (C**2).sum(axis=1)
    for start in range(0, X.shape[0], block):
        xb = X[start : start + block]
        d = (xb**2).sum(axis=1)[:, None] - 2 * xb @ C.T + c2[None, :]
        out[start : start + block] = np.maximum(d.min(axis=1), 0.0)
    return out
