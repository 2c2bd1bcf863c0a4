"""Influence at (flat) validation minima: VM and FVM (``docs/math.md`` §8), and baselines.

Start from the model trained on the possibly noisy training set, then keep training on the
clean validation set to its minimum θ̃ — plain gradient descent (VM) or sharpness-aware
minimisation (FVM), whose step is

    θ ← θ − η ∇L_val(θ + r ∇L_val(θ)/‖∇L_val(θ)‖).

The score of a training point is

    I(z) = g̃(z)ᵀ H̃_val⁻¹ g̃(z),   g̃ = ∇_θ ℓ(z; θ̃),   H̃_val = ∇²_θ L_val(θ̃)

with L_val the *mean* validation loss, (1/n_val)[Σ_j ℓ(z_j; θ) + e^s C(θ)] (no penalty unless
``s`` is given). A large I marks a label as likely wrong; the relabel proposal for a point is
the class y' that minimises I((x, y')). If H̃_val is singular, a damping δ·I is added with a
warning (an explicit ``damping`` is used as given).

Baselines for noisy-label detection: the self-influence g ᵀ H_tr⁻¹ g with the training Hessian
at θ*, TracIn's Σ_c η_c ‖g(z; θ_c)‖² over SGD checkpoints, and the training loss.
Detection quality is the ROC AUC of a score separating corrupted from clean labels.

Solves go through :func:`alloop.linalg.solve`: the validation problem is a copy of the model
whose θ*, training data and s are θ̃, the validation set and the validation penalty.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alloop.influence._inputs import check_validation_classes, encode_labels, fitted_theta
from alloop.linalg import hessian, solve
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import DTYPE, as_features


# ----------------------------------------------------------------------------- the validation problem
def _validation_problem(
    model: DifferentiableModel, theta: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor, s: float | None
) -> DifferentiableModel:
    """A copy of ``model`` whose objective is Σ_val ℓ + e^s C at θ (the summed validation loss)."""
    view = model.with_s(-math.inf if s is None else s)
    view.theta_ = theta.detach()
    view.X_train_, view.y_train_ = X_val, y_val
    if isinstance(view, GLM) and view.likelihood == "categorical" and view.lam == 0.0:
        # Without a penalty, adding one vector to every class's weights leaves a softmax
        # unchanged: those directions are exactly flat (GLM.null_space lists only the intercept
        # one, which a penalty leaves flat). Declaring them on this private copy makes
        # alloop.linalg.solve return the pseudo-inverse there; per-point gradients have no
        # component along them.
        rows_ = view.n_features_ + int(view.fit_intercept)
        k = view.n_outputs_
        Q = torch.kron(torch.eye(rows_, dtype=DTYPE), torch.ones(k, 1, dtype=DTYPE) / math.sqrt(k))
        view.null_space = lambda: Q
    return view


def _mean_objective(view: DifferentiableModel) -> Callable[[torch.Tensor], torch.Tensor]:
    n = view.X_train_.shape[0]
    return lambda t: view.objective(t, view.X_train_, view.y_train_) / n


def _mean_gradient(view: DifferentiableModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """θ ↦ ∇L_val(θ); closed form for GLMs with the default complexity, else ``torch.func``."""
    X, y, n = view.X_train_, view.y_train_, view.X_train_.shape[0]
    if isinstance(view, GLM) and view.closed_form:
        diag = view.lam * view.penalty_mask()
        return lambda t: (view.per_point_grads(t, X, y).sum(dim=0) + diag * t) / n
    return torch.func.grad(_mean_objective(view))


def sam_step(
    grad_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, lr: float, radius: float
) -> torch.Tensor:
    """One sharpness-aware step θ − η ∇L(θ + r ∇L(θ)/‖∇L(θ)‖) (plain GD where ∇L(θ) = 0).

    Parameters
    ----------
    grad_fn : callable
        θ ↦ ∇L(θ).
    theta : Tensor
    lr, radius : float
        η and r ≥ 0.

    Examples
    --------
    >>> import torch
    >>> grad = lambda t: 2 * t                      # L = ‖θ‖²
    >>> sam_step(grad, torch.tensor([3.0, 4.0]), lr=0.1, radius=0.5)
    tensor([2.3400, 3.1200])
    """
    if radius < 0:
        raise ValueError(f"the SAM radius must be non-negative; got {radius!r}")
    g = grad_fn(theta)
    norm = g.norm()
    if radius == 0 or norm == 0:
        return theta - lr * g
    return theta - lr * grad_fn(theta + radius * g / norm)


@dataclass(frozen=True)
class ValidationMinimum:
    """Where the continuation on the validation set ended.

    Attributes
    ----------
    theta : Tensor
        θ̃.
    steps : int
        Steps taken.
    grad_norm : float
        ‖∇L_val(θ̃)‖ (mean validation objective).
    flat : bool
        True for SAM (FVM), False for plain gradient descent (VM).
    """

    theta: torch.Tensor
    steps: int
    grad_norm: float
    flat: bool


def _largest_curvature(view: DifferentiableModel, n_val: int) -> float:
    H = hessian(view) / n_val
    return float(torch.linalg.eigvalsh(H).max())


def validation_minimum(
    model: DifferentiableModel,
    X_val: Any,
    y_val: Any,
    *,
    sam_radius: float = 0.0,
    lr: float | None = None,
    max_steps: int = 5000,
    tol: float = 1e-8,
    s: float | None = None,
    theta0: torch.Tensor | None = None,
) -> ValidationMinimum:
    """Continue training on the validation set: VM (``sam_radius=0``) or FVM (SAM).

    Parameters
    ----------
    model : DifferentiableModel
        Fitted on the training set; its θ̂ is the start unless ``theta0`` is given.
    X_val, y_val : array-like
        Clean validation features and raw labels (at least two classes).
    sam_radius : float
        r. 0 gives plain gradient descent with Armijo backtracking, run until
        ‖∇L_val‖ ≤ ``tol``. r > 0 runs SAM with a fixed step for ``max_steps`` steps (on a
        strictly convex loss SAM circles the minimum at a distance of order r; it has no exact
        fixed point), stopping early only if ‖∇L_val‖ ≤ ``tol``.
    lr : float, optional
        Step size; default 1/λ_max(H̃_val) at the start (the initial trial step for GD).
    s : float, optional
        log λ of a penalty on the validation objective; ``None`` for none (ERM).

    Returns
    -------
    ValidationMinimum
    """
    fitted_theta(model, "VM/FVM")
    Xv = as_features(X_val)
    yv = encode_labels(model, y_val, "validation labels", Xv.shape[0])
    check_validation_classes(model, yv, "VM/FVM (its validation minimum would not exist)")
    theta = (model.theta_ if theta0 is None else theta0).detach().to(DTYPE).clone()
    view = _validation_problem(model, theta, Xv, yv, s)
    L = _mean_objective(view)
    grad = _mean_gradient(view)
    if lr is None:
        lr = 1.0 / max(_largest_curvature(view, Xv.shape[0]), 1e-12)
    if lr <= 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be positive and finite; got {lr!r}")
    steps = 0
    if sam_radius > 0:
        while steps < max_steps and grad(theta).norm() > tol:
            theta = sam_step(grad, theta, lr, sam_radius)
            steps += 1
    else:
        value, step, g = L(theta), lr, grad(theta)
        while g.norm() > tol:
            if steps == max_steps:
                warnings.warn(
                    f"VM: gradient descent on the validation set stopped after {max_steps} steps "
                    f"with ‖∇L_val‖ = {g.norm():.2e} > tol = {tol:.1e}; raise max_steps, or give "
                    "the validation objective a penalty s (a separable validation set has no "
                    "minimum)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            gg = float(g @ g)
            step = min(2.0 * step, 1e6 * lr)
            while True:  # Armijo backtracking
                cand = theta - step * g
                new = L(cand)
                if new <= value - 0.5 * step * gg or step < 1e-14:
                    break
                step *= 0.5
            theta, value, g = cand, new, grad(cand)
            steps += 1
    return ValidationMinimum(theta, steps, float(grad(theta).norm()), sam_radius > 0)


# ----------------------------------------------------------------------------- scores
def _solve_validation(
    view: DifferentiableModel, B: torch.Tensor, damping: float | None, method: str
) -> torch.Tensor:
    """(H̃_val + δI)⁻¹ B with H̃_val the mean validation Hessian; auto damping with a warning."""
    n = view.X_train_.shape[0]
    if damping is not None:
        return n * solve(view, B, method, damping=n * float(damping))
    try:
        return n * solve(view, B, method)
    except ValueError:
        H = hessian(view) / n
        damping = 1e-6 * max(float(torch.diagonal(H).abs().mean()), 1e-12)
        warnings.warn(
            f"the validation Hessian at θ̃ is singular (not positive definite); added damping "
            f"{damping:.3g}·I to it. Pass damping= to choose the value, or s= to penalise the "
            "validation objective.",
            RuntimeWarning,
            stacklevel=3,
        )
        return n * solve(view, B, method, damping=n * damping)


def validation_influence(
    model: DifferentiableModel,
    theta: torch.Tensor,
    X: Any,
    y: Any,
    X_val: Any,
    y_val: Any,
    *,
    s: float | None = None,
    damping: float | None = None,
    method: str = "exact",
) -> torch.Tensor:
    """I(z) = g̃(z)ᵀ H̃_val⁻¹ g̃(z) at θ̃ for every training point z = (x, y).

    Parameters
    ----------
    model : DifferentiableModel
        Defines the loss and the parameter layout (fitted).
    theta : Tensor
        θ̃, e.g. ``validation_minimum(...).theta``.
    X, y : array-like
        Training points to score (raw labels).
    X_val, y_val : array-like
        The validation set that defines H̃_val.
    s : float, optional
        Validation penalty (as in :func:`validation_minimum`).
    damping : float, optional
        δ added to H̃_val. ``None``: none, unless H̃_val is singular (then a small δ with a
        warning).
    method : {"exact", "cg"}

    Returns
    -------
    Tensor, shape (n,)
    """
    fitted_theta(model, "VM/FVM")
    Xt = as_features(X)
    yt = encode_labels(model, y, "training labels", Xt.shape[0])
    Xv = as_features(X_val)
    yv = encode_labels(model, y_val, "validation labels", Xv.shape[0])
    check_validation_classes(model, yv, "VM/FVM")
    view = _validation_problem(model, theta, Xv, yv, s)
    G = model.per_point_grads(theta, Xt, yt)
    return (G * _solve_validation(view, G.T.contiguous(), damping, method).T).sum(dim=1)


@dataclass(frozen=True)
class ValidationInfluence:
    """VM/FVM scores with the validation minimum they were computed at."""

    scores: torch.Tensor
    minimum: ValidationMinimum


def validation_minimum_influence(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    X_val: Any,
    y_val: Any,
    *,
    flat: bool = True,
    sam_radius: float = 0.05,
    lr: float | None = None,
    max_steps: int | None = None,
    tol: float = 1e-8,
    s: float | None = None,
    damping: float | None = None,
    method: str = "exact",
) -> ValidationInfluence:
    """VM (``flat=False``) or FVM (``flat=True``, SAM with radius ``sam_radius``) scores.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 2)); y = (X[:, 0] + rng.normal(size=120) > 0).astype(int)
    >>> model = LogisticGLM(s=0.0).fit(X[:80], y[:80])
    >>> out = validation_minimum_influence(model, X[:80], y[:80], X[80:], y[80:], flat=False)
    >>> out.scores.shape, out.minimum.grad_norm < 1e-8
    (torch.Size([80]), True)
    """
    steps = max_steps if max_steps is not None else (500 if flat else 5000)
    minimum = validation_minimum(
        model, X_val, y_val, sam_radius=sam_radius if flat else 0.0, lr=lr, max_steps=steps,
        tol=tol, s=s,
    )
    scores = validation_influence(
        model, minimum.theta, X, y, X_val, y_val, s=s, damping=damping, method=method
    )
    return ValidationInfluence(scores, minimum)


def relabel_proposals(
    model: DifferentiableModel,
    theta: torch.Tensor,
    X: Any,
    X_val: Any,
    y_val: Any,
    *,
    s: float | None = None,
    damping: float | None = None,
    method: str = "exact",
) -> tuple[np.ndarray, torch.Tensor]:
    """For each point, the class y' that minimises I((x, y')) at θ̃.

    Returns
    -------
    proposals : ndarray, shape (n,)
        Raw class labels (from ``model.classes_``).
    influence : Tensor, shape (n, C)
        I((x, c)) for every class c, in the order of ``model.classes_``.
    """
    fitted_theta(model, "relabelling")
    if model.task != "classification":
        raise ValueError("relabel proposals need a classifier")
    assert model.classes_ is not None
    Xt = as_features(X)
    n = Xt.shape[0]
    Xv = as_features(X_val)
    yv = encode_labels(model, y_val, "validation labels", Xv.shape[0])
    check_validation_classes(model, yv, "relabelling")
    view = _validation_problem(model, theta, Xv, yv, s)
    G = torch.cat([model.per_point_grads(theta, Xt, model.encode_y(np.full(n, c))) for c in model.classes_])
    scores = (G * _solve_validation(view, G.T.contiguous(), damping, method).T).sum(dim=1)
    influence = scores.view(len(model.classes_), n).T
    return model.classes_[influence.argmin(dim=1).numpy()], influence
