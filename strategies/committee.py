"""Query by committee with a bootstrap committee (Seung et al., 1992; Abe & Mamitsuka, 1998).

The committee is ``n_members`` clones of the model, each fitted on a bootstrap resample (drawn
with replacement, same size) of the labeled set. An item is worth asking when the members
disagree about it:

* vote entropy: ``−Σ_c (V_c/M) log(V_c/M)``, V_c the members voting for class c;
* maximum KL to the consensus: ``max_m KL(p_m ‖ p̄)``, p̄ the members' mean predictive law;
* regression: the standard deviation of the members' predictions.

The scorers draw the resamples from the context's ``rng`` (equal generators, equal scores);
their one option is ``n_members`` (default 5, :class:`CommitteeOptions`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strategies.base import StrategyOptions
from strategies.registry import strategy


class CommitteeOptions(StrategyOptions):
    """Options of the bootstrap committees (vote-entropy, kl-max, max-std)."""

    n_members: int = Field(5, ge=2, strict=True, description="bootstrap members")

#: redraws allowed for a classification resample that holds a single class.
_MAX_REDRAWS = 100


def bootstrap_indices(
    n: int, n_members: int, rng: np.random.Generator, y: np.ndarray | None = None
) -> list[np.ndarray]:
    """``n_members`` bootstrap resamples of ``range(n)``, each of size ``n``.

    With class labels ``y``, a resample holding a single class is redrawn, so that every
    member can be fitted as a classifier.

    Parameters
    ----------
    n : int
        Size of the labeled set.
    n_members : int
        Number of resamples.
    rng : numpy.random.Generator
        The only source of randomness: equal generators give equal resamples.
    y : numpy.ndarray, optional
        Class labels (classification only).

    Returns
    -------
    list of numpy.ndarray of int64, each of shape (n,)
    """
    if n_members < 2:
        raise ValueError(f"a committee needs at least 2 members; got n_members={n_members}")
    if y is not None and np.unique(y).size < 2:
        raise ValueError(
            f"the labeled set holds a single class {np.unique(y).tolist()!r}; a committee of "
            "classifiers needs at least two (label a few more items at random first)"
        )
    samples = []
    for _ in range(n_members):
        for _ in range(_MAX_REDRAWS):
            index = rng.integers(0, n, size=n)
            if y is None or np.unique(y[index]).size >= 2:
                break
        else:
            raise RuntimeError(
                f"{_MAX_REDRAWS} bootstrap resamples in a row held a single class; the labeled "
                "set is too unbalanced for a bootstrap committee"
            )
        samples.append(index)
    return samples


def class_set(model: Any, y: np.ndarray) -> np.ndarray:
    """The full sorted label set: the model's declared classes and every observed label."""
    declared = getattr(model, "classes_", None)
    observed = np.unique(y)
    return observed if declared is None else np.union1d(np.asarray(declared), observed)


def bootstrap_committee(
    model: Any,
    X: Any,
    y: np.ndarray,
    n_members: int = 5,
    rng: np.random.Generator | None = None,
) -> list[Any]:
    """Fit ``n_members`` clones of ``model`` on bootstrap resamples of ``(X, y)``.

    alloop's differentiable classifiers are told the full class set (``classes=``) so every
    member has one output per class even when its resample misses a class.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> X = np.arange(10.0).reshape(-1, 1); y = 2 * X[:, 0]
    >>> len(bootstrap_committee(LinearGLM(), X, y, 3, np.random.default_rng(0)))
    3
    """
    if X is None or y is None or X.shape[0] == 0:
        raise ValueError(
            "a bootstrap committee needs labeled data: pass X_labeled and y_labeled in the "
            "context (at least two labeled items)"
        )
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X_labeled has {X.shape[0]} rows but y_labeled has {y.shape[0]} labels")
    rng = np.random.default_rng(0) if rng is None else rng
    classify = getattr(model, "task", None) == "classification"
    classes = class_set(model, y) if classify else None
    return [fit_clone(model, X[index], y[index], classes)
            for index in bootstrap_indices(X.shape[0], n_members, rng, y if classify else None)]


def fit_clone(model: Any, X: Any, y: np.ndarray, classes: np.ndarray | None = None) -> Any:
    """An unfitted clone of ``model`` fitted on ``(X, y)``; with ``classes``, alloop's
    differentiable classifiers get one output per class even where ``y`` misses some."""
    from alloop.models.base import DifferentiableModel

    member = model.clone()
    if classes is not None and isinstance(member, DifferentiableModel):
        member.fit(X, y, classes=classes)
    else:
        member.fit(X, y)
    return member


def aligned_proba(member: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """``member.predict_proba(X)`` with one column per entry of ``classes`` (0 for unseen)."""
    proba = np.asarray(member.predict_proba(X), dtype=np.float64)
    out = np.zeros((proba.shape[0], classes.size))
    out[:, np.searchsorted(classes, np.asarray(member.classes_))] = proba
    return out


def vote_entropy(votes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Entropy of the committee's vote shares, per item.

    Parameters
    ----------
    votes : numpy.ndarray, shape (M, n)
        Label predicted by each of M members for each of n items.
    classes : numpy.ndarray, shape (C,)
        Sorted label set.

    Returns
    -------
    numpy.ndarray, shape (n,): ``−Σ_c (V_c/M) log(V_c/M)`` in nats.

    Examples
    --------
    >>> import numpy as np
    >>> vote_entropy(np.array([[0, 1], [0, 0]]), np.array([0, 1])).round(4).tolist()
    [0.0, 0.6931]
    """
    from scipy.special import xlogy
    votes = np.asarray(votes)
    m = votes.shape[0]
    share = np.stack([(votes == c).sum(axis=0) for c in classes], axis=1) / m
    return 0.0 - xlogy(share, share).sum(axis=1)  # 0 − …: no −0.0 for a unanimous vote


def max_consensus_kl(probas: np.ndarray) -> np.ndarray:
    """``max_m KL(p_m ‖ p̄)`` per item, p̄ the mean of the members' laws.

    Parameters
    ----------
    probas : numpy.ndarray, shape (M, n, C)

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    from scipy.special import rel_entr
    consensus = probas.mean(axis=0, keepdims=True)
    return rel_entr(probas, consensus).sum(axis=2).max(axis=0)


@strategy(
    "vote-entropy",
    "Query by committee: entropy of the votes of a bootstrap committee.",
    needs=("classification", "labeled"),
    options=CommitteeOptions,
)
def vote_entropy_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_members: int = 5,
    **_: Any,
) -> np.ndarray:
    members = bootstrap_committee(model, X_labeled, y_labeled, n_members, rng)
    classes = class_set(model, np.asarray(y_labeled))
    votes = np.stack([np.asarray(member.predict(X_pool)) for member in members])
    return vote_entropy(votes, classes)


@strategy(
    "kl-max",
    "Query by committee: largest KL divergence of a bootstrap member from the consensus.",
    needs=("classification", "proba", "labeled"),
    options=CommitteeOptions,
)
def kl_max_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_members: int = 5,
    **_: Any,
) -> np.ndarray:
    members = bootstrap_committee(model, X_labeled, y_labeled, n_members, rng)
    classes = class_set(model, np.asarray(y_labeled))
    probas = np.stack([aligned_proba(member, X_pool, classes) for member in members])
    return max_consensus_kl(probas)


@strategy(
    "max-std",
    "Query by committee (regression): std of a bootstrap committee's predictions.",
    needs=("regression", "labeled"),
    options=CommitteeOptions,
)
def max_std_scores(
    model: Any,
    X_pool: Any,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    rng: np.random.Generator | None = None,
    n_members: int = 5,
    **_: Any,
) -> np.ndarray:
    members = bootstrap_committee(model, X_labeled, y_labeled, n_members, rng)
    predictions = np.stack([np.asarray(member.predict(X_pool), dtype=np.float64) for member in members])
    return predictions.std(axis=0)
