"""Solve H x = b for a fitted model's Hessian: dense Cholesky or conjugate gradients."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.linalg.hessian import hessian, hvp_fn

if TYPE_CHECKING:  # the linalg layer needs no models at import time
    from alloop.models.base import DifferentiableModel

SOLVERS = ("exact", "cg")


def _project_out(Q: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    return b if Q is None else b - Q @ (Q.T @ b)


def solve(
    model: DifferentiableModel,
    b: torch.Tensor,
    method: str = "exact",
    *,
    damping: float = 0.0,
    tol: float = 1e-12,
    max_iter: int | None = None,
) -> torch.Tensor:
    """x = (H + damping·I)⁻¹ b at the model's θ*, for one right-hand side (p,) or several (p, m).

    Directions in ``model.null_space()`` (exact flat directions of the objective) are
    projected out of ``b`` and ``x``: the solve is then the pseudo-inverse on that subspace.

    Raises
    ------
    ValueError
        If H is singular (e.g. λ = 0 with fewer points than parameters) and no damping is set.
    """
    if method not in SOLVERS:
        raise ValueError(f"unknown solver {method!r}; expected one of {SOLVERS}")
    Q = model.null_space()
    b = _project_out(Q, b)
    if method == "exact":
        H = hessian(model)
        if damping:
            H = H + damping * torch.eye(H.shape[0], dtype=H.dtype)
        if Q is not None:
            H = H + Q @ Q.T
        L = cholesky_with_jitter(H, what=f"the Hessian of {model!r} (λ = e^s = {model.lam:.3g})")
        x = torch.cholesky_solve(b.unsqueeze(1) if b.dim() == 1 else b, L)
        x = x[:, 0] if b.dim() == 1 else x
        return _project_out(Q, x)
    hvp = hvp_fn(model)
    op = (lambda v: hvp(v) + damping * v) if damping else hvp
    if b.dim() == 1:
        return _project_out(Q, conjugate_gradient(op, b, tol=tol, max_iter=max_iter))
    cols = [conjugate_gradient(op, b[:, j], tol=tol, max_iter=max_iter) for j in range(b.shape[1])]
    return _project_out(Q, torch.stack(cols, dim=1))


def conjugate_gradient(
    op: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    *,
    tol: float = 1e-12,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Conjugate gradients for A x = b with a symmetric positive-definite operator ``op``.

    Stops when ‖r‖ ≤ tol·‖b‖. Warns if the iteration budget (default 10·dim) runs out.
    """
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = r @ r
    target = (tol * b.norm()) ** 2
    for _ in range(max_iter):
        if rs <= target:
            return x
        Ap = op(p)
        curvature = p @ Ap
        if curvature <= 0:
            raise ValueError(
                "conjugate gradients met non-positive curvature: the Hessian is not positive "
                "definite at θ* (not a minimum, or λ = 0); refit to convergence or add damping"
            )
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    warnings.warn(
        f"conjugate gradients stopped after {max_iter} iterations with relative residual "
        f"{(rs.sqrt() / b.norm()).item():.2e}",
        RuntimeWarning,
        stacklevel=2,
    )
    return x
