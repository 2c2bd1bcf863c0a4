"""ρ = ∂_s ∇_θ F = e^s ∇C(θ*): the right-hand side that every tangent solver shares."""

from __future__ import annotations

import numpy as np
import torch

from alloop.models.base import DifferentiableModel


def regularity_rhs(model: DifferentiableModel, theta: torch.Tensor | None = None) -> torch.Tensor:
    """ρ = ∂_s ∇_θ F = e^s ∇C(θ*).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([0.0, 1.0, 2.0])
    >>> rho = regularity_rhs(LinearGLM(s=0.0).fit(X, y))
    >>> tuple(rho.shape)
    (2,)
    """
    theta = model.theta_ if theta is None else theta
    if type(model).complexity is DifferentiableModel.complexity:
        # the default C = ½‖mask∘θ‖²: ∇C = mask∘θ, what autograd gives bit for bit, without
        # its ≈ 1 ms of overhead (a tenth of a softmax GLM's per-fit work)
        return float(np.exp(model.s)) * (model.penalty_mask() * theta)
    return float(np.exp(model.s)) * torch.func.grad(model.complexity)(theta)
