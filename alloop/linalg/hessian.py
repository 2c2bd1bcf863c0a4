"""The Hessian H = ∇²_θ F(θ*; s) of a model's training objective: dense, or as products."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:  # annotations only: the linalg layer sits below the models
    from alloop.models.base import DifferentiableModel


@runtime_checkable
class ClosedFormHessian(Protocol):
    """A model whose objective has a closed-form Hessian (a GLM, :class:`~alloop.models.GLM`).

    ``closed_form`` is False when a subclass changed the objective (another complexity), so
    the closed form no longer holds and automatic differentiation is used instead.
    """

    @property
    def closed_form(self) -> bool: ...

    def hessian(self, theta: torch.Tensor, X: torch.Tensor, s: float | None = None) -> torch.Tensor: ...

    def loss_hessian_vp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor: ...

    def penalty_mask(self) -> torch.Tensor: ...


def _closed_form(model: object) -> bool:
    return isinstance(model, ClosedFormHessian) and model.closed_form



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
    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    if _closed_form(model):
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
    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    if _closed_form(model):
        # GLMs: closed form, which also works for sparse X (torch has no sparse forward-mode AD)
        lam = float(torch.tensor(model.s if s is None else s, dtype=torch.float64).exp())
        mask = model.penalty_mask()
        return lambda v: model.loss_hessian_vp(theta, X, v) + lam * mask * v
    grad = torch.func.grad(lambda t: model.objective(t, X, y, s))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad, (theta,), (v,))[1]

    return hvp
