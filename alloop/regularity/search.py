"""Automatic choice of s = log λ: :func:`select_regularity` on a validation split.

It minimises V(s) over a bounded interval of s with the derivatives of
:mod:`alloop.regularity.hypergradient`: every evaluation is one warm-started refit plus one
tangent solve, so the loop can choose λ each round without a grid search over refits
(docs/math.md §4).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from alloop.models.base import DifferentiableModel
from alloop.regularity.hypergradient import (
    _hypergradient,
    _value,
    check_differentiable,
    refit,
    validation_tensors,
)

__all__ = ["RegularitySelection", "select_regularity"]


@dataclass(frozen=True)
class RegularitySelection:
    """What :func:`select_regularity` found.

    Attributes
    ----------
    s : float
        The selected s* = log λ*.
    value, gradient : float
        V(s*) and V'(s*).
    iterations : int
        Fits evaluated (each one warm-started fit plus one tangent solve).
    at_bound : bool
        s* is a bound of the search interval with V' pointing outside it.
    converged : bool
        The search met its tolerance (or stopped at a bound) within ``max_iter``.
    bounds : tuple of float
    history : tuple of (s, V, V')
        Every evaluation in order.
    """

    s: float
    value: float
    gradient: float
    iterations: int
    at_bound: bool
    converged: bool
    bounds: tuple[float, float]
    history: tuple[tuple[float, float, float], ...] = field(repr=False, default=())

    def as_dict(self) -> dict[str, float | int | bool]:
        """Flat scalars, ready for ``mlflow.log_metrics`` / a results table."""
        return {
            "s_star": self.s,
            "lambda_star": math.exp(self.s),
            "validation_loss": self.value,
            "hypergradient": self.gradient,
            "iterations": self.iterations,
            "at_bound": self.at_bound,
            "converged": self.converged,
        }


@dataclass
class _Point:
    s: float
    value: float
    grad: float
    model: DifferentiableModel


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"bounds must be two finite numbers lo < hi; got {bounds!r}")
    return lo, hi


def select_regularity(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    X_val: Any,
    y_val: Any,
    s0: float | None = None,
    bounds: tuple[float, float] = (-10.0, 10.0),
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    xtol: float = 1e-4,
    max_iter: int = 40,
    initial_step: float = 1.0,
    max_step: float = 4.0,
    **fit_kwargs: Any,
) -> tuple[float, DifferentiableModel, RegularitySelection]:
    """Choose s = log λ by minimising the validation loss V(s) with its hypergradient.

    The search works on V'(s) = g_V·θ̇, which costs one warm-started refit and one tangent solve
    per evaluation:

    1. Fit at ``s0`` (by default the model's current s — in the loop, last round's s*,
       so the search usually starts next to the answer), warm-started from the model's θ.
    2. Walk downhill (against the sign of V') with secant-Newton steps
       s ← s − V'/V''_secant when the secant curvature is positive, otherwise steps of
       ``initial_step`` that double, each capped at ``max_step`` and clipped to ``bounds``,
       until V' changes sign (a bracket holding a minimum of V) or a bound is reached with V'
       still pointing outwards (then s* is that bound and ``at_bound`` is set).
    3. Inside the bracket, secant steps on V' from the last two evaluations, falling back to
       bisection when a step would leave the bracket or the last one failed to halve |V'|;
       stop when a step is shorter than ``xtol`` (or the bracket is).

    Every refit starts from the θ of the previous evaluation. The result is the evaluated s with
    the smallest V.

    Parameters
    ----------
    model : DifferentiableModel
        Fitted or not; a fitted model's θ warm-starts the first fit.
    X, y
        Training data (raw labels), fitted once at ``s0``; later refits reuse its tensors,
        classes and Gaussian σ² (σ² is held fixed along s so V is the function θ̇ describes).
    X_val, y_val
        Validation split.
    s0 : float, optional
        Starting s (clipped to ``bounds``); defaults to ``model.s``.
    bounds : (float, float)
        Search interval for s.
    tangent_method, damping
        Passed to :func:`alloop.tangent.regularity_tangent`.
    xtol : float
        Stop when a step in s is shorter than this.
    max_iter : int
        At most this many fits; a warning says if the search did not converge.
    initial_step, max_step : float
        First step and the largest step in s.
    **fit_kwargs
        Passed to ``model.fit`` (e.g. ``classes=``).

    Returns
    -------
    s_star : float
    fitted_model : DifferentiableModel
        Fitted at s_star.
    info : RegularitySelection

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(60, 5))
    >>> y = X @ rng.normal(size=5) + 2.0 * rng.normal(size=60)
    >>> s, fitted, info = select_regularity(LinearGLM(), X[:40], y[:40], X[40:], y[40:])
    >>> fitted.s == s and info.converged
    True
    """
    lo, hi = _check_bounds(bounds)
    if not (xtol > 0 and initial_step > 0 and max_step >= initial_step and max_iter >= 1):
        raise ValueError(
            "need xtol > 0, initial_step > 0, max_step >= initial_step and max_iter >= 1; got "
            f"xtol={xtol!r}, initial_step={initial_step!r}, max_step={max_step!r}, "
            f"max_iter={max_iter!r}"
        )
    check_differentiable(model, "automatic regularity", fitted=False)
    start = float(model.s if s0 is None else s0)
    if not math.isfinite(start):
        raise ValueError(f"s0 must be finite; got {s0!r}")
    start = min(max(start, lo), hi)

    first = model.with_s(start).fit(X, y, **fit_kwargs)
    Xv, yv = validation_tensors(first, X_val, y_val)

    def evaluate(m: DifferentiableModel) -> _Point:
        grad = _hypergradient(m, Xv, yv, tangent_method, damping)[0]
        return _Point(m.s, _value(m, Xv, yv), grad, m)

    point = evaluate(first)
    history = [point]
    best = point
    left: _Point | None = None  # evaluated with V' < 0: a minimum lies to its right
    right: _Point | None = None  # evaluated with V' > 0: a minimum lies to its left
    previous: _Point | None = None
    step = initial_step
    at_bound = converged = False
    bisected = True  # the last bracketed step was a bisection (or there was none yet)

    def place(p: _Point) -> None:
        nonlocal left, right
        if p.grad < 0 and (left is None or p.s > left.s) and (right is None or p.s < right.s):
            left = p
        elif p.grad > 0 and (right is None or p.s < right.s) and (left is None or p.s > left.s):
            right = p

    place(point)
    while len(history) < max_iter:
        if point.grad == 0.0:
            converged = True
            break
        bracketed = left is not None and right is not None
        secant = None
        if previous is not None and point.grad != previous.grad:
            secant = point.s - point.grad * (point.s - previous.s) / (point.grad - previous.grad)
        if bracketed:
            a, b = left.s, right.s
            if b - a < xtol:
                converged = True
                break
            # Secant while it stays inside the bracket and keeps halving |V'|, else bisect.
            progress = bisected or abs(point.grad) <= 0.5 * abs(previous.grad)
            use_secant = secant is not None and a < secant < b and progress
            target = secant if use_secant else 0.5 * (a + b)
            bisected = not use_secant
        else:
            direction = -1.0 if point.grad > 0 else 1.0
            edge = lo if direction < 0 else hi
            if point.s == edge:
                at_bound = converged = True
                break
            curvature = None
            if previous is not None and point.s != previous.s:
                curvature = (point.grad - previous.grad) / (point.s - previous.s)
            if curvature is not None and curvature > 0:
                length = min(abs(point.grad / curvature), max_step)
            else:
                length = step
                step = min(2.0 * step, max_step)
            target = min(max(point.s + direction * length, lo), hi)
        if abs(target - point.s) < 0.5 * xtol:
            converged = True
            break
        previous, point = point, evaluate(refit(point.model, target))
        history.append(point)
        place(point)
        if point.value < best.value:
            best = point
    else:
        warnings.warn(
            f"select_regularity stopped after {max_iter} fits without meeting xtol={xtol:g} "
            f"(last s = {point.s:.4g}, V'(s) = {point.grad:.3g}); raise max_iter",
            RuntimeWarning,
            stacklevel=2,
        )

    info = RegularitySelection(
        s=best.s,
        value=best.value,
        gradient=best.grad,
        iterations=len(history),
        at_bound=at_bound and best is point,
        converged=converged,
        bounds=(lo, hi),
        history=tuple((p.s, p.value, p.grad) for p in history),
    )
    return best.s, best.model, info
