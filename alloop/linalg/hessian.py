"""The Hessian H = ∇²_θ F(θ*; s) of a model's training objective: dense, or as products."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the linalg layer needs no models at import time
    from alloop.models.base import DifferentiableModel



def hessian(
    model: DifferentiableModel,
    theta: torch.Tensor | None = None,
    X: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    s: float | None = None,
) -> torch.Tensor:
    """Dense Hessian of F(θ; s) on (X, y) (default: the model's training data at θ*).

    GLMs use their closed form; other models use ``torch.func.hessian``.
    """
    from alloop.models.base import DifferentiableModel

    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    if hasattr(model, "hessian") and type(model).complexity is DifferentiableModel.complexity:
        return model.hessian(theta, X, s)
    return torch.func.hessian(lambda t: model.objective(t, X, y, s))(theta)


def hvp_fn(
    model: DifferentiableModel,
    theta: torch.Tensor | None = None,
    X: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    s: float | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ H v by forward-over-reverse differentiation (``jvp`` of ``grad``), never forming H."""
    from alloop.models.base import DifferentiableModel

    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    if hasattr(model, "loss_hessian_vp") and type(model).complexity is DifferentiableModel.complexity:
        # GLMs: closed form, which also works for sparse X (torch has no sparse forward-mode AD)
        lam = float(torch.tensor(model.s if s is None else s, dtype=torch.float64).exp())
        mask = model.penalty_mask()
        return lambda v: model.loss_hessian_vp(theta, X, v) + lam * mask * v
    grad = torch.func.grad(lambda t: model.objective(t, X, y, s))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad, (theta,), (v,))[1]

    return hvp
