"""Dawid–Skene: estimate each annotator's confusion matrix and each item's true class by EM.

Model (Dawid & Skene, 1979): item ``i`` has a hidden class ``z_i ~ Categorical(p)``; annotator
``a`` reports ``l`` with probability ``π_a[z_i, l]``, independently across annotators given
``z_i``. With ``T_ik = P(z_i = k | answers)``, EM alternates

- M-step: ``p_k ∝ α + Σ_i T_ik`` and ``π_a[k, l] ∝ α + Σ_i T_ik [a said l on i]``;
- E-step: ``T_ik ∝ p_k Π_a Π_l π_a[k, l]^[a said l on i]``,

starting from the vote shares (so class ``k`` keeps meaning label ``k``). ``α`` (a symmetric
Dirichlet pseudo-count) keeps unseen cells off zero; ``α = 0`` is plain maximum likelihood.
Votes follow :mod:`alloop.aggregation.majority`: one vote per annotator and item, the latest.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from alloop.aggregation.majority import votes as collect_votes


@dataclass(frozen=True)
class DawidSkeneResult:
    """A fitted Dawid–Skene model.

    Attributes
    ----------
    items, annotators, classes : list
        Row / annotator / class order of the arrays below.
    posterior : ndarray (n_items, n_classes)
        ``P(true class | answers)`` per item.
    priors : ndarray (n_classes,)
    confusion : ndarray (n_annotators, n_classes, n_classes)
        ``confusion[a, k, l] = P(annotator a answers l | true class k)``.
    labels : dict
        item → most probable class (ties: the class listed first).
    log_likelihood : float
        ``Σ_i log Σ_k p_k Π_a π_a[k, l_ia]`` at the returned parameters.
    n_iter : int
    converged : bool
    """

    items: list[str]
    annotators: list[str]
    classes: list[Hashable]
    posterior: np.ndarray
    priors: np.ndarray
    confusion: np.ndarray
    labels: dict[str, Hashable]
    log_likelihood: float
    n_iter: int
    converged: bool

    def posterior_of(self, item: str) -> dict[Hashable, float]:
        """class → posterior probability for one item."""
        row = self.posterior[self.items.index(item)]
        return dict(zip(self.classes, row.tolist()))

    def accuracy_of(self, annotator: str) -> float:
        """The annotator's estimated accuracy ``Σ_k p_k π_a[k, k]``."""
        a = self.annotators.index(annotator)
        return float(self.priors @ np.diag(self.confusion[a]))


def _m_step(
    T: np.ndarray, onehot: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    K = T.shape[1]
    priors = (T.sum(0) + smoothing) / (T.shape[0] + K * smoothing)
    counts = np.einsum("ik,ial->akl", T, onehot) + smoothing
    totals = counts.sum(axis=2, keepdims=True)
    # An annotator with no answers for true class k: uniform row (no information).
    confusion = np.divide(counts, totals, out=np.full_like(counts, 1.0 / K), where=totals > 0)
    return priors, confusion


def _log_joint(priors: np.ndarray, confusion: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """``log p_k + Σ_a Σ_l [a said l on i] log π_a[k, l]``, shape (items, classes)."""
    with np.errstate(divide="ignore"):
        log_pi = np.log(confusion)
        out = np.tile(np.log(priors), (onehot.shape[0], 1))
    # Only answers given contribute (so a zero cell of π matters only where it was said).
    i, a, label = np.nonzero(onehot)
    np.add.at(out, i, log_pi[a, :, label])
    return out


def dawid_skene(
    answers: Iterable[Any],
    classes: Sequence[Hashable] | None = None,
    *,
    smoothing: float = 0.01,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> DawidSkeneResult:
    """Fit Dawid–Skene by EM to an answer log.

    Parameters
    ----------
    answers : iterable
        ``(item_id, annotator, label)`` triples or answer objects, in the order given (see
        :mod:`alloop.aggregation.majority` for how they become votes).
    classes : sequence, optional
        The label set; default: the labels that occur, sorted.
    smoothing : float
        Dirichlet pseudo-count ``α`` on priors and confusion cells (≥ 0).
    max_iter : int
        EM iterations (one iteration = M-step then E-step).
    tol : float
        Stop when no posterior entry moves by more than ``tol``.

    Returns
    -------
    DawidSkeneResult

    Examples
    --------
    Annotator ``c`` always contradicts ``a``; Dawid–Skene learns that ``c`` flips labels and
    reads item ``r`` the other way from a majority vote:

    >>> said = {"p": (0, 0, 1), "q": (1, 1, 0), "r": (0, 1, 1), "s": (1, 0, 0), "t": (0, 0, 1)}
    >>> log = [(item, who, y) for item, ys in said.items() for who, y in zip("abc", ys)]
    >>> result = dawid_skene(log)
    >>> result.labels["r"], round(result.accuracy_of("a"), 2), round(result.accuracy_of("c"), 2)
    (0, 1.0, 0.0)
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be ≥ 0; got {smoothing!r}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be ≥ 0; got {max_iter!r}")
    table = collect_votes(answers)
    items = list(table)
    annotators = sorted({a for per in table.values() for a in per})
    seen = {label for per in table.values() for label in per.values()}
    if classes is None:
        classes = sorted(seen, key=lambda c: (str(type(c)), c))
    classes = list(classes)
    unknown = seen - set(classes)
    if unknown:
        raise ValueError(f"answers use labels {sorted(unknown, key=str)!r} outside classes {classes!r}")
    if not items:
        K = len(classes)
        return DawidSkeneResult([], [], classes, np.zeros((0, K)), np.full(K, 1.0 / max(K, 1)),
                                np.zeros((0, K, K)), {}, 0.0, 0, True)
    n, m, K = len(items), len(annotators), len(classes)
    col = {c: k for k, c in enumerate(classes)}
    row = {a: j for j, a in enumerate(annotators)}
    onehot = np.zeros((n, m, K))
    for i, item in enumerate(items):
        for a, label in table[item].items():
            onehot[i, row[a], col[label]] = 1.0

    T = onehot.sum(axis=1)
    T = T / T.sum(axis=1, keepdims=True)
    priors, confusion = _m_step(T, onehot, smoothing)
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        priors, confusion = _m_step(T, onehot, smoothing)
        log_joint = _log_joint(priors, confusion, onehot)
        new = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
        change = float(np.max(np.abs(new - T)))
        T = new
        if change <= tol:
            converged = True
            break
    log_joint = _log_joint(priors, confusion, onehot)
    log_likelihood = float(logsumexp(log_joint, axis=1).sum())
    labels = {item: classes[int(np.argmax(T[i]))] for i, item in enumerate(items)}
    return DawidSkeneResult(items, annotators, classes, T, priors, confusion, labels,
                            log_likelihood, n_iter, converged)
