"""Validation loss along the regularity path, its hypergradient, and automatic choice of s.

With θ*(s) the fitted parameters at regularity s = log λ and a validation split Val,

    V(s)   = Σ_{j∈Val} ℓ(z_j; θ*(s))
    V'(s)  = g_V·θ̇,            g_V = Σ_{j∈Val} ∇_θ ℓ(z_j; θ*),  θ̇ = dθ*/ds = −H⁻¹ρ
    V''(s) ≈ (V'(s + h) − V'(s − h)) / 2h          (two refits)

(docs/math.md §4). :func:`select_regularity` minimises V over a bounded interval of s with
these derivatives: every evaluation is one warm-started refit plus one tangent solve, so the
loop can choose λ each round without a grid search over refits.

Refits here keep everything but s fixed — the training tensors the model was fitted on, its
classes and its Gaussian σ² — so that V(s) is the function whose derivative θ̇ describes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel, NotDifferentiableError
from alloop.models.glm import GLM
from alloop.models.tensors import as_features
from alloop.tangent import regularity_tangent

__all__ = [
    "RegularitySelection",
    "hypergradient",
    "hypergradient_curvature",
    "refit",
    "select_regularity",
    "validation_gradient",
    "validation_hvp",
    "validation_loss",
]


# --------------------------------------------------------------------------- helpers
def check_differentiable(model: Any, what: str, *, fitted: bool = True) -> DifferentiableModel:
    """Return ``model`` if it is a (fitted) differentiable model; raise a clear error otherwise."""
    if not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"{what} needs gradients of a differentiable model; "
            f"{type(getattr(model, 'estimator', model)).__name__} is not one. Supported: alloop's "
            "GLMs (LinearGLM, LogisticGLM, SoftmaxGLM) and torch MLPs, and scikit-learn "
            "LogisticRegression (l2) and Ridge through their GLM mapping."
        )
    if fitted:
        model._check_fitted()
    return model


def validation_tensors(
    model: DifferentiableModel, X_val: Any, y_val: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and encoded labels of a validation split, as the model's loss expects them."""
    if X_val is None or y_val is None:
        raise ValueError(
            "a validation split is required (X_val and y_val); the loop provides one when "
            "`validation_fraction` > 0, or pass X_val=..., y_val=... yourself"
        )
    Xv = as_features(X_val)
    y = y_val.numpy() if isinstance(y_val, torch.Tensor) else np.asarray(y_val)
    if Xv.shape[0] != len(y):
        raise ValueError(f"X_val has {Xv.shape[0]} rows but y_val has {len(y)} labels")
    if len(y) == 0:
        raise ValueError("the validation split is empty")
    return Xv, model.encode_y(y)


def tangent_options(
    damping: float, method: str = "exact", solve_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Options for :func:`regularity_tangent` with ``method``, passed on only when set.

    ``damping`` goes to the solvers that take it (not to "sgdf", whose tangent is stored by
    training: there the damping is meant for the other solves); ``solve_options`` (``tol``,
    ``max_iter``) to the linear solvers "exact" and "cg".
    """
    if method == "sgdf":
        return {}
    options: dict[str, Any] = {"damping": float(damping)} if damping else {}
    if method in ("exact", "cg") and solve_options:
        options.update(solve_options)
    return options


def refit(model: DifferentiableModel, s: float) -> DifferentiableModel:
    """A copy of a fitted model refitted at regularity ``s`` on the same training data.

    The refit starts from the model's θ* (a warm start) and keeps its training tensors, classes
    and Gaussian σ², so only s changes.
    """
    theta = check_differentiable(model, "refitting along s")._check_fitted()
    if not math.isfinite(s):
        raise ValueError(f"s = log λ must be finite; got {s!r}")
    new = model.with_s(float(s))
    new.theta_ = new._fit_params(theta.clone(), model.X_train_, model.y_train_).detach()
    return new


# --------------------------------------------------------------------------- V and V'
def _loss_sum(model: DifferentiableModel, theta: torch.Tensor, Xv, yv) -> torch.Tensor:
    return model.loss(theta, Xv, yv).sum()


def validation_loss(model: DifferentiableModel, X_val: Any, y_val: Any) -> float:
    """V = Σ_{j∈Val} ℓ(z_j; θ*) at the model's fitted θ*."""
    model = check_differentiable(model, "the validation loss")
    Xv, yv = validation_tensors(model, X_val, y_val)
    return _value(model, Xv, yv)


def _value(model: DifferentiableModel, Xv: torch.Tensor, yv: torch.Tensor) -> float:
    with torch.no_grad():
        return float(_loss_sum(model, model.theta_, Xv, yv))


def _gradient(model: DifferentiableModel, Xv: torch.Tensor, yv: torch.Tensor) -> torch.Tensor:
    return torch.func.grad(lambda t: _loss_sum(model, t, Xv, yv))(model.theta_).detach()


def validation_gradient(model: DifferentiableModel, X_val: Any, y_val: Any) -> torch.Tensor:
    """g_V = Σ_{j∈Val} ∇_θ ℓ(z_j; θ*), shape (p,)."""
    model = check_differentiable(model, "the validation gradient")
    return _gradient(model, *validation_tensors(model, X_val, y_val))


def _hvp(
    model: DifferentiableModel, Xv: torch.Tensor, yv: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    theta = model.theta_
    if isinstance(model, GLM):
        # Linear in θ: the loss Hessian is exactly J_Vᵀ Λ J_V; this path also serves sparse X.
        f, fdot = model.output_jvp(theta, Xv, v)
        lam = lk.output_hessian(model.likelihood, f.detach(), model.sigma2)
        w = torch.einsum("nij,nj->ni", lam, fdot.detach())
        _, pullback = torch.func.vjp(lambda t: model.output(t, Xv), theta)
        return pullback(w)[0].detach()
    grad = torch.func.grad(lambda t: _loss_sum(model, t, Xv, yv))
    return torch.func.jvp(grad, (theta,), (v,))[1].detach()


def validation_hvp(
    model: DifferentiableModel, X_val: Any, y_val: Any, v: torch.Tensor
) -> torch.Tensor:
    """H_V v, the validation-loss Hessian (no regularizer) times ``v``, shape (p,)."""
    model = check_differentiable(model, "the validation Hessian")
    return _hvp(model, *validation_tensors(model, X_val, y_val), v)


def _hypergradient(
    model: DifferentiableModel,
    Xv: torch.Tensor,
    yv: torch.Tensor,
    tangent_method: str,
    damping: float,
    tangent: torch.Tensor | None = None,
    solve_options: dict[str, Any] | None = None,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    if tangent is None:
        options = tangent_options(damping, tangent_method, solve_options)
        tangent = regularity_tangent(model, tangent_method, **options)
    g_val = _gradient(model, Xv, yv)
    return float(g_val @ tangent), g_val, tangent


def hypergradient(
    model: DifferentiableModel,
    X_val: Any,
    y_val: Any,
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    tangent: torch.Tensor | None = None,
) -> float:
    """V'(s) = g_V·θ̇ at the model's s: one validation gradient and one tangent solve.

    Parameters
    ----------
    model : DifferentiableModel
        Fitted at the s of interest.
    X_val, y_val
        Validation split (raw labels).
    tangent_method : str
        Passed to :func:`alloop.tangent.regularity_tangent` ("exact", "cg", ...).
    damping : float
        Added to the Hessian in the tangent solve (only needed for a singular H).
    tangent : torch.Tensor, optional
        A θ̇ already computed for this fit.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 3))
    >>> y = X @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=40)
    >>> model = LinearGLM(s=0.0).fit(X[:30], y[:30])
    >>> isinstance(hypergradient(model, X[30:], y[30:]), float)
    True
    """
    model = check_differentiable(model, "the hypergradient V'(s)")
    Xv, yv = validation_tensors(model, X_val, y_val)
    return _hypergradient(model, Xv, yv, tangent_method, damping, tangent)[0]


def _curvature(
    model: DifferentiableModel,
    Xv,
    yv,
    step: float,
    tangent_method: str,
    damping: float,
    solve_options: dict[str, Any] | None = None,
) -> float:
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"the finite-difference step in s must be positive; got {step!r}")
    values = [
        _hypergradient(
            refit(model, model.s + sign * step),
            Xv,
            yv,
            tangent_method,
            damping,
            solve_options=solve_options,
        )[0]
        for sign in (1.0, -1.0)
    ]
    return (values[0] - values[1]) / (2.0 * step)


def hypergradient_curvature(
    model: DifferentiableModel,
    X_val: Any,
    y_val: Any,
    *,
    step: float = 1e-3,
    tangent_method: str = "exact",
    damping: float = 0.0,
) -> float:
    """V''(s) by a central difference of V' at s ± ``step`` (two warm-started refits)."""
    model = check_differentiable(model, "the curvature V''(s)")
    Xv, yv = validation_tensors(model, X_val, y_val)
    return _curvature(model, Xv, yv, step, tangent_method, damping)


# --------------------------------------------------------------------------- selection
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
