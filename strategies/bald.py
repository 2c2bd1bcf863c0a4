"""BALD: the mutual information between an item's label and the model (Houlsby et al., 2011).

With T equally weighted posterior samples p_t(y | x) — MC-dropout passes of a torch model
with dropout layers (Gal et al., 2017), or the members of a bootstrap committee for any other
model — the score is

    I(y; θ | x) = H[ (1/T) Σ_t p_t(y | x) ] − (1/T) Σ_t H[ p_t(y | x) ]   (nats).

:func:`posterior_probas` draws the samples; it is shared with ``batchbald`` and ``epig``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from strategies.base import StrategyOptions
from strategies.committee import aligned_proba, bootstrap_committee, class_set
from strategies.registry import strategy


class PosteriorOptions(StrategyOptions):
    """Options of the strategies that sample the posterior (bald, batchbald, epig)."""

    n_samples: int = Field(
        20, ge=2, strict=True, description="MC-dropout passes, or bootstrap committee members"
    )


@runtime_checkable
class SupportsMCDropout(Protocol):
    """A model that samples predictive laws under dropout (alloop's :class:`TorchModel`)."""

    has_dropout: bool

    def mc_proba(self, X: Any, n_samples: int = 20, seed: int = 0) -> np.ndarray: ...


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy −Σ p log p along ``axis`` (nats; 0 log 0 = 0)."""
    from scipy.special import xlogy
    return 0.0 - xlogy(p, p).sum(axis=axis)


def mutual_information(probas: np.ndarray) -> np.ndarray:
    """BALD's I(y; θ) per item from posterior samples.

    Parameters
    ----------
    probas : numpy.ndarray, shape (T, n, C)
        T equally weighted samples of each item's predictive law.

    Returns
    -------
    numpy.ndarray, shape (n,), in nats, ≥ 0.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    >>> mutual_information(p).round(4).tolist()  # members disagree on item 0 only
    [0.6931, 0.0]
    """
    probas = np.asarray(probas, dtype=np.float64)
    return np.maximum(entropy(probas.mean(axis=0)) - entropy(probas).mean(axis=0), 0.0)


def posterior_probas(
    model: Any,
    X: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_samples: int = 20,
) -> np.ndarray:
    """T samples of the predictive law of every row of ``X``, shape (T, n, C).

    MC-dropout passes when ``model`` has dropout layers (:class:`SupportsMCDropout`),
    otherwise the members of a bootstrap committee of ``n_samples`` clones fitted on
    resamples of the labeled set. Both draw their randomness from ``rng``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if isinstance(model, SupportsMCDropout) and model.has_dropout:
        return model.mc_proba(X, n_samples=n_samples, seed=int(rng.integers(2**31)))
    members = bootstrap_committee(model, X_labeled, y_labeled, n_samples, rng)
    classes = class_set(model, np.asarray(y_labeled))
    return np.stack([aligned_proba(member, X, classes) for member in members])


@strategy(
    "bald",
    "BALD: mutual information of label and model, from MC dropout or a bootstrap committee.",
    needs=("classification", "proba", "labeled"),
    options=PosteriorOptions,
)
def bald_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_samples: int = 20,
    **_: Any,
) -> np.ndarray:
    probas = posterior_probas(
        model, X_pool, X_labeled=X_labeled, y_labeled=y_labeled, rng=rng, n_samples=n_samples
    )
    return mutual_information(probas)
