"""BatchBALD: greedy maximisation of the joint mutual information of a batch (Kirsch et al., 2019).

With T equally weighted posterior samples p_t (see :func:`strategies.bald.posterior_probas`),

    I(y_1, …, y_b; θ) = H(y_1, …, y_b) − Σ_i (1/T) Σ_t H[p_t(y_i)],
    p(y_1, …, y_b) = (1/T) Σ_t Π_i p_t(y_i).

The batch grows one item at a time, each time adding the item that maximises the joint MI of
the batch so far plus it. The joint entropy is exact (all C^{b−1} label configurations of the
chosen items) while there are at most ``max_configs`` of them; beyond, ``n_configs``
configurations ŷ_s are sampled from p(y_1, …, y_{b−1}) and

    H(y_1..b) ≈ −(1/S) Σ_s Σ_c p(ŷ_s, c) / p(ŷ_s) · log p(ŷ_s, c).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strategies._order import n_picks, order_scores
from strategies.bald import PosteriorOptions, entropy, posterior_probas
from strategies.registry import strategy


class BatchBALDOptions(PosteriorOptions):
    """BatchBALD's options: the posterior samples, and when to sample label configurations."""

    max_configs: int = Field(
        1024, ge=1, strict=True, description="exact joint entropy up to this many configurations"
    )
    n_configs: int = Field(1024, ge=1, strict=True, description="sampled configurations beyond")


def _joint_entropy(P: np.ndarray, probas: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """H(chosen labels, y_x) for every item x; ``P`` (T, M) holds Π_i p_t(config_m of chosen).

    ``weights`` None: the M configurations are all of them (exact); otherwise they are samples
    with p̂(ŷ_s) = ``weights[s]`` and the importance-weighted estimate is returned.
    """
    T = probas.shape[0]
    joint = np.einsum("tm,tic->imc", P, probas) / T  # p(config_m, y_x = c), shape (n, M, C)
    if weights is None:
        return entropy(joint.reshape(joint.shape[0], -1))
    ratio = joint / weights[None, :, None]
    return 0.0 - (ratio * np.log(np.where(joint > 0, joint, 1.0))).sum(axis=(1, 2)) / P.shape[1]


def batchbald_greedy(
    probas: np.ndarray,
    k: int,
    *,
    max_configs: int = 1024,
    n_configs: int = 1024,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The greedy BatchBALD batch and the joint MI after each pick.

    Parameters
    ----------
    probas : numpy.ndarray, shape (T, n, C)
        Posterior samples of every candidate's predictive law.
    k : int
        Batch size, ``1 ≤ k ≤ n``.
    max_configs : int
        Exact joint entropies while the chosen items have at most this many label
        configurations; sampled configurations (this many) beyond.
    rng : numpy.random.Generator, optional
        Draws the sampled configurations (seed 0 when omitted).

    Returns
    -------
    order : numpy.ndarray of int64, shape (k,)
        Candidate positions in pick order.
    mi : numpy.ndarray, shape (k,)
        ``mi[j]`` = I(y_order[0], …, y_order[j]; θ) (exact or estimated).

    Examples
    --------
    >>> import numpy as np
    >>> a, b, c, d = [1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]
    >>> p = np.array([[a, a, c], [a, a, d], [b, b, c], [b, b, d]])  # 4 samples, 3 items
    >>> order, mi = batchbald_greedy(p, 2)
    >>> order.tolist()  # item 1 repeats item 0's information; item 2 adds its own
    [0, 2]
    """
    probas = np.asarray(probas, dtype=np.float64)
    T, n, C = probas.shape
    if not 1 <= k <= n:
        raise ValueError(f"batch size k = {k} must be between 1 and the number of candidates {n}")
    rng = np.random.default_rng(0) if rng is None else rng
    conditional = entropy(probas).mean(axis=0)  # E_t H[p_t(y_x)], shape (n,)
    P, weights = np.ones((T, 1)), None
    member = labels = None  # sampled mode: the sample t_s of each configuration, and ŷ_s
    chosen, mi, cond_sum = [], [], 0.0
    free = np.ones(n, dtype=bool)
    for _ in range(k):
        gain = _joint_entropy(P, probas, weights) - cond_sum - conditional
        gain[~free] = -np.inf
        i = int(np.argmax(gain))
        chosen.append(i)
        mi.append(float(gain[i]))
        free[i] = False
        cond_sum += conditional[i]
        if weights is None and P.shape[1] * C <= max_configs:
            P = (P[:, :, None] * probas[:, i, None, :]).reshape(T, -1)
            continue
        if weights is None:  # switch to sampling: draw configurations of the chosen items
            member = rng.integers(0, T, size=n_configs)
            cdf = np.cumsum(P[member], axis=1)
            labels = (cdf < rng.random(n_configs)[:, None] * cdf[:, -1:]).sum(axis=1)
            P = P[:, np.minimum(labels, P.shape[1] - 1)]
        # extend every configuration by a label of item i drawn from its own sample t_s
        cdf = np.cumsum(probas[member, i], axis=1)
        y_new = np.minimum((cdf < rng.random(n_configs)[:, None] * cdf[:, -1:]).sum(axis=1), C - 1)
        P = P * probas[:, i, y_new]
        weights = P.mean(axis=0)
    return np.asarray(chosen, dtype=np.int64), np.asarray(mi)


@strategy(
    "batchbald",
    "BatchBALD: greedy joint mutual information of the batch (exact, or sampled configurations).",
    needs=("classification", "proba", "labeled"),
    options=BatchBALDOptions,
)
def batchbald_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_samples: int = 20,
    max_configs: int = 1024,
    n_configs: int = 1024,
    **context: Any,
) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    probas = posterior_probas(
        model, X_pool, X_labeled=X_labeled, y_labeled=y_labeled, rng=rng, n_samples=n_samples
    )
    k = n_picks(context, X_pool.shape[0])
    order, _ = batchbald_greedy(
        probas, k, max_configs=max_configs, n_configs=n_configs, rng=rng
    )
    return order_scores(order, X_pool.shape[0])
