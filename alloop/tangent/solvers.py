"""Solvers for the regularity tangent of a fitted model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alloop.linalg.solve import solve
from alloop.models.base import DifferentiableModel, NotDifferentiableError

TANGENT_METHODS = ("exact", "cg")


def regularity_rhs(model: DifferentiableModel, theta: torch.Tensor | None = None) -> torch.Tensor:
    """ρ = ∂_s ∇_θ F = e^s ∇C(θ*)."""
    theta = model.theta_ if theta is None else theta
    return float(np.exp(model.s)) * torch.func.grad(model.complexity)(theta)


def regularity_tangent(model: Any, method: str = "exact", **options: Any) -> torch.Tensor:
    """θ̇ = dθ*/ds = −H⁻¹ρ at the model's fitted θ*.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model.
    method : {"exact", "cg"}
        Dense Cholesky, or conjugate gradients with Hessian-vector products.
    **options
        Passed to :func:`alloop.linalg.solve` (``damping``, ``tol``, ``max_iter``).
    """
    if not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"the regularity tangent needs a differentiable model (alloop GLM, MLP, or a "
            f"scikit-learn LogisticRegression / Ridge); got {type(model).__name__}"
        )
    if model.theta_ is None:
        raise RuntimeError("fit the model before computing its tangent")
    if method not in TANGENT_METHODS:
        raise ValueError(f"unknown tangent method {method!r}; expected one of {TANGENT_METHODS}")
    return -solve(model, regularity_rhs(model), method, **options)
