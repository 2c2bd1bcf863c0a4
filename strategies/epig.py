"""EPIG: expected predictive information gain on a target sample (Bickford Smith et al., 2023).

With T posterior samples p_t (see :func:`strategies.bald.posterior_probas`) and m target
inputs x* drawn from the pool,

    EPIG(x) = (1/m) Σ_{x*} I(y; y* | x, x*),
    I(y; y*) = Σ_{c,d} p(c, d) log [ p(c, d) / (p(c) p(d)) ],  p(c, d) = (1/T) Σ_t p_t(c|x) p_t(d|x*).

Unlike BALD it values information about predictions where the model will be used, not
about parameters that predictions may not depend on; EPIG(x) ≤ BALD(x) always.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strategies.bald import PosteriorOptions, posterior_probas
from strategies.registry import strategy


class EPIGOptions(PosteriorOptions):
    """EPIG's options: the posterior samples and the size of the target sample."""

    n_targets: int = Field(100, ge=1, strict=True, description="target inputs drawn from the pool")


def expected_predictive_information_gain(
    probas: np.ndarray, target_probas: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """EPIG of every candidate against the target inputs, in nats.

    Parameters
    ----------
    probas : numpy.ndarray, shape (T, n, C)
        Posterior samples for the candidates.
    target_probas : numpy.ndarray, shape (T, m, C)
        The same T samples for the target inputs.
    chunk : int
        Candidates per block (memory ∝ chunk · m · C²).

    Returns
    -------
    numpy.ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])    # two samples disagree completely
    >>> float(expected_predictive_information_gain(p, p).round(4)[0])  # = log 2
    0.6931
    """
    from scipy.special import xlogy
    probas = np.asarray(probas, dtype=np.float64)
    target = np.asarray(target_probas, dtype=np.float64)
    T = probas.shape[0]
    target_marginal = target.mean(axis=0)  # (m, C)
    out = np.empty(probas.shape[1])
    for start in range(0, probas.shape[1], chunk):
        block = probas[:, start : start + chunk]
        joint = np.einsum("tic,tjd->ijcd", block, target) / T
        indep = block.mean(axis=0)[:, None, :, None] * target_marginal[None, :, None, :]
        ratio = np.where(joint > 0, joint / np.where(indep > 0, indep, 1.0), 1.0)
        out[start : start + chunk] = xlogy(joint, ratio).sum(axis=(2, 3)).mean(axis=1)
    return np.maximum(out, 0.0)


@strategy(
    "epig",
    "EPIG: expected information gain about predictions on a target sample of the pool.",
    needs=("classification", "proba", "labeled"),
    options=EPIGOptions,
)
def epig_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_samples: int = 20,
    n_targets: int = 100,
    **_: Any,
) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    probas = posterior_probas(
        model, X_pool, X_labeled=X_labeled, y_labeled=y_labeled, rng=rng, n_samples=n_samples
    )
    n = probas.shape[1]
    targets = rng.choice(n, size=min(int(n_targets), n), replace=False)
    return expected_predictive_information_gain(probas, probas[:, targets])
