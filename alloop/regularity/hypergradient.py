"""Validation loss along the regularity path and its derivatives in s.

With θ*(s) the fitted parameters at regularity s = log λ and a validation split Val,

    V(s)   = Σ_{j∈Val} ℓ(z_j; θ*(s))
    V'(s)  = g_V·θ̇,            g_V = Σ_{j∈Val} ∇_θ ℓ(z_j; θ*),  θ̇ = dθ*/ds = −H⁻¹ρ
    V''(s) ≈ (V'(s + h) − V'(s − h)) / 2h          (two refits)

(docs/math.md §4); :mod:`alloop.regularity.search` chooses s with them.

Refits here keep everything but s fixed — the training tensors the model was fitted on, its
classes and its Gaussian σ² — so that V(s) is the function whose derivative θ̇ describes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel, NotDifferentiableError
from alloop.models.glm import GLM
from alloop.tangent import regularity_tangent

__all__ = [
    "hypergradient",
    "hypergradient_curvature",
    "refit",
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
    Xv = model.as_features(X_val)
    y = y_val.cpu().numpy() if isinstance(y_val, torch.Tensor) else np.asarray(y_val)
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
