"""Uncertainty sampling: least confident, smallest margin, largest predictive entropy.

The scores come from modAL's own functions, which need nothing of the model but
``predict_proba``; any alloop classifier (or a scikit-learn classifier wrapped as one) works.
For predictive probabilities p(c | x):

* least confident: ``1 − max_c p(c | x)``;
* margin: ``−(p₁ − p₂)``, the two largest probabilities (negated so that higher = ask first);
* entropy: ``−Σ_c p(c | x) log p(c | x)`` (natural log).

Each is row-wise: the per-round state is the fitted model itself (:func:`fitted_model`), and the
scorer is its own ``score_rows``, so a sharded backend ships the model once per round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.registry import strategy

_NEEDS = ("classification", "proba")


def fitted_model(model: Any, **_: Any) -> Any:
    """The per-round state of the uncertainty scores: the model (context is not used)."""
    return model


def least_confident(model: Any, X_pool: Any, **_: Any) -> np.ndarray:
    """``1 − max_c p(c | x)`` for every pool row.

    Examples
    --------
    >>> import numpy as np
    >>> class Fixed:
    ...     def predict_proba(self, X):
    ...         return np.array([[0.9, 0.1], [0.5, 0.5]])
    >>> least_confident(Fixed(), np.zeros((2, 1))).round(3).tolist()
    [0.1, 0.5]
    """
    from modAL.uncertainty import classifier_uncertainty
    return np.asarray(classifier_uncertainty(model, X_pool), dtype=np.float64)


def negative_margin(model: Any, X_pool: Any, **_: Any) -> np.ndarray:
    """``−(p₁ − p₂)``, minus the gap between the two most probable classes."""
    from modAL.uncertainty import classifier_margin
    return -np.asarray(classifier_margin(model, X_pool), dtype=np.float64)


def predictive_entropy(model: Any, X_pool: Any, **_: Any) -> np.ndarray:
    """``−Σ_c p(c | x) log p(c | x)`` in nats."""
    from modAL.uncertainty import classifier_entropy
    return np.asarray(classifier_entropy(model, X_pool), dtype=np.float64)


def _register(name: str, description: str, scorer: Any) -> Any:
    # score_rows(fitted_model(model), X) is scorer(model, X): the same call, row by row.
    return strategy(
        name, description, needs=_NEEDS, prepare=fitted_model, score_rows=scorer
    )(scorer)


LEAST_CONFIDENT = _register(
    "least-confident", "Least confident prediction: 1 − max_c p(c|x) (modAL).", least_confident
)
UNCERTAINTY = _register(
    "uncertainty", "Alias of 'least-confident': 1 − max_c p(c|x) (modAL).", least_confident
)
MARGIN = _register(
    "margin",
    "Smallest margin between the two most probable classes, −(p₁ − p₂) (modAL).",
    negative_margin,
)
ENTROPY = _register(
    "entropy", "Largest predictive entropy −Σ_c p log p (modAL).", predictive_entropy
)
