"""Influence-based data selection: fit on a base set, score labeled candidates by IP-adding
(:mod:`alloop.influence.ip_adding`, ``docs/math.md`` §6) against a validation set, keep a subset,
refit on base ∪ subset. The split of the labeled items into those sets is here too.

Methods (the paper's Method 1 and the budgeted variants):

* ``method1`` — add every candidate with a positive score (no budget);
* ``topk`` — the ``budget`` highest scores;
* ``weighted`` — scores with each validation point weighted by its residual |τ_j − f_j| (so the
  score is the first-order decrease of ½Σ_j(τ_j − f_j)²), then the ``budget`` highest, or every
  positive one without a budget.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["method1", "topk", "weighted"]


@dataclass(frozen=True)
class CandidateSplit:
    """Positions of the base, candidate and validation items (disjoint, each sorted)."""

    base: np.ndarray
    candidate: np.ndarray
    validation: np.ndarray


def _draw(index: np.ndarray, k: int, labels: np.ndarray | None, rng: np.random.RandomState, part: str):
    """(taken, kept): ``k`` items of ``index``, stratified by ``labels`` where that is possible."""
    from sklearn.model_selection import train_test_split

    if k == 0:
        return index[:0], index
    if k >= index.size:
        return index, index[:0]
    strata = None if labels is None else labels[index]
    try:
        kept, taken = train_test_split(index, test_size=k, random_state=rng, stratify=strata)
    except ValueError as exc:
        if strata is None:
            raise
        warnings.warn(f"the {part} set is drawn without stratification: {exc}", UserWarning, stacklevel=3)
        kept, taken = train_test_split(index, test_size=k, random_state=rng)
    return taken, kept


def split_candidates(
    y: Any,
    *,
    base: float = 0.6,
    candidate: float = 0.4,
    validation: float = 0.0,
    seed: int = 0,
    stratify: bool = True,
) -> CandidateSplit:
    """Split n labeled items into validation, base and candidate sets.

    ``validation`` is a fraction of all n items (rounded up); ``base`` and ``candidate`` are
    fractions of the remaining m (base rounded to nearest; when they sum to 1 the candidates are
    the rest). Classification labels (non-float ``y``) are stratified where possible.

    Examples
    --------
    >>> s = split_candidates(np.repeat([0, 1], 50), base=0.6, candidate=0.4, validation=0.2)
    >>> len(s.validation), len(s.base), len(s.candidate)
    (20, 48, 32)
    """
    y = np.asarray(y)
    n = y.shape[0]
    if not (0.0 <= validation < 1.0 and 0.0 < base <= 1.0 and 0.0 < candidate <= 1.0):
        raise ValueError(
            f"need 0 ≤ validation < 1 and base, candidate in (0, 1]; got {validation}, {base}, {candidate}"
        )
    if base + candidate > 1.0 + 1e-9:
        raise ValueError(f"base ({base}) + candidate ({candidate}) exceed 1")
    n_val = math.ceil(validation * n - 1e-9)
    m = n - n_val
    n_base = int(round(base * m))
    n_cand = m - n_base if abs(base + candidate - 1.0) <= 1e-9 else int(round(candidate * m))
    if n_base < 1 or n_cand < 1 or (validation > 0 and n_val < 1):
        raise ValueError(
            f"{n} items give {n_base} base, {n_cand} candidate and {n_val} validation items; every "
            "part needs at least one: use more data or larger fractions"
        )
    labels = y if stratify and y.dtype.kind not in "fc" else None
    rng = np.random.RandomState(seed)
    validation_index, rest = _draw(np.arange(n), n_val, labels, rng, "validation")
    base_index, rest = _draw(rest, n_base, labels, rng, "base")
    candidate_index, _ = _draw(rest, n_cand, labels, rng, "candidate")
    return CandidateSplit(np.sort(base_index), np.sort(candidate_index), np.sort(validation_index))


@dataclass(frozen=True)
class SelectionResult:
    """What :func:`select_and_retrain` found.

    Attributes
    ----------
    scores : ndarray, shape (n_cand,)
        IP-adding score of every candidate (higher: adding it helps the validation predictions).
    selected : ndarray of int
        Positions of the chosen candidates, highest score first.
    base_model, model
        Fitted on the base set, and on base ∪ selected.
    metrics, base_metrics : dict
        Test metrics of ``model`` and ``base_model`` (empty without a test set).
    full_metrics : dict or None
        Test metrics of a model fitted on base ∪ all candidates (``compare_full``).
    seconds : dict
        Wall-clock time of each step: ``fit_base``, ``score``, ``fit_selected``, ``fit_full``.
    """

    scores: np.ndarray
    selected: np.ndarray
    base_model: Any
    model: Any
    metrics: dict[str, float]
    base_metrics: dict[str, float]
    full_metrics: dict[str, float] | None
    seconds: dict[str, float] = field(default_factory=dict)


def stack_rows(*parts: Any) -> Any:
    """Row-stack numpy arrays or scipy sparse matrices (CSR out if any part is sparse)."""
    import scipy.sparse as sp

    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.vstack([np.asarray(p) for p in parts])


def method_options(method: Method, budget: int | float | None) -> tuple[str | None, int | float | None]:
    """(validation weights, budget) that :func:`alloop.influence.select_subset` takes for a method."""
    if method == "method1":
        if budget is not None:
            raise ValueError("method 'method1' takes no budget (it keeps every positive score)")
        return None, None
    if method == "topk":
        if budget is None:
            raise ValueError("method 'topk' needs a budget (a count or a fraction of the candidates)")
        return None, budget
    if method == "weighted":
        return "residual", budget
    raise ValueError(f"unknown method {method!r}; expected 'method1', 'topk' or 'weighted'")


def select_and_retrain(
    model: Any,
    X_base: Any,
    y_base: Any,
    X_cand: Any,
    y_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    method: Method = "method1",
    budget: int | float | None = None,
    classes: Any | None = None,
    X_test: Any | None = None,
    y_test: Any | None = None,
    solver: str = "exact",
    damping: float = 0.0,
    compare_full: bool = True,
) -> SelectionResult:
    """Fit on the base set, score the candidates by IP-adding, select, refit on base ∪ selected.

    Parameters
    ----------
    model : DifferentiableModel
        An unfitted template (it is cloned); an alloop GLM or torch model.
    X_base, y_base, X_cand, y_cand, X_val, y_val : array-like
        Features (dense or scipy sparse) and raw labels.
    method, budget
        See the module docstring.
    classes : array-like, optional
        Every class label (default: those in the base set). Candidates or validation points
        with other labels are refused.
    X_test, y_test : array-like, optional
        Test data for the reported metrics.
    solver, damping
        Passed to :func:`alloop.linalg.solve`.
    compare_full : bool
        Also fit on base ∪ all candidates and report its test metrics.

    Examples
    --------
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    >>> out = select_and_retrain(LogisticGLM(s=0.0), X[:50], y[:50], X[50:150], y[50:150],
    ...                          X[150:], y[150:], method="topk", budget=20)
    >>> out.selected.shape, out.scores.shape
    ((20,), (100,))
    """
    from alloop.influence.subset import select_subset
    from alloop.metrics import evaluate

    weights, k = method_options(method, budget)
    seconds: dict[str, float] = {}
    fit_kwargs = {} if classes is None else {"classes": classes}

    t0 = time.perf_counter()
    base_model = model.clone().fit(X_base, np.asarray(y_base), **fit_kwargs)
    seconds["fit_base"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    chosen = select_subset(
        base_model, X_cand, np.asarray(y_cand), X_val, np.asarray(y_val),
        budget=k, weights=weights, method=solver, damping=damping,
    )
    seconds["score"] = time.perf_counter() - t0

    def refit(index: np.ndarray) -> Any:
        X = stack_rows(X_base, take_rows(X_cand, index))
        y = np.concatenate([np.asarray(y_base), np.asarray(y_cand)[index]])
        # with_s keeps θ̂ of the base model as a warm start (GLMs); the base model is untouched.
        return base_model.with_s(base_model.s).fit(X, y, **fit_kwargs)

    t0 = time.perf_counter()
    selected_model = refit(chosen.index) if chosen.index.size else base_model
    seconds["fit_selected"] = time.perf_counter() - t0

    def test_metrics(m: Any) -> dict[str, float]:
        if X_test is None or y_test is None:
            return {}
        known = None if classes is None else np.asarray(sorted(classes))
        return evaluate(m, X_test, np.asarray(y_test), known)

    full_metrics = None
    if compare_full:
        t0 = time.perf_counter()
        full_metrics = test_metrics(refit(np.arange(chosen.scores.size)))
        seconds["fit_full"] = time.perf_counter() - t0
    return SelectionResult(
        scores=chosen.scores,
        selected=chosen.index,
        base_model=base_model,
        model=selected_model,
        metrics=test_metrics(selected_model),
        base_metrics=test_metrics(base_model),
        full_metrics=full_metrics,
        seconds=seconds,
    )


def take_rows(X: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a dense array or a scipy sparse matrix."""
    return X[np.asarray(index, dtype=np.int64)]
