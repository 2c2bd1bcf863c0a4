"""Solve H x = b for a fitted model's Hessian: dense Cholesky or conjugate gradients."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.linalg.hessian import (
    _closed_form,
    check_rows,
    gauss_newton_diagonal,
    hessian,
    hvp_fn,
    subsample_rows,
)
from alloop.linalg.refine import norm_estimate, refined_solve

if TYPE_CHECKING:  # the linalg layer needs no models at import time
    from alloop.models.base import DifferentiableModel

SOLVERS = ("exact", "cg")
#: CG preconditioners: none, or Jacobi from the Gauss–Newton diagonal (+ e^s·mask + damping).
PRECONDITIONERS = (None, "jacobi")


def _project_out(Q: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    return b if Q is None else b - Q @ (Q.T @ b)


class Inverse:
    """b ↦ (H + δI)⁻¹b at one fit's θ*, for every solve of that fit.

    "exact" builds and factors H once (the first call) and reuses the factor for every later
    right-hand side (STI's θ̇ and q, SSI's θ̇, u, a, b, e share one factorization); "cg" runs
    conjugate gradients with Hessian-vector products each call, optionally preconditioned
    (``preconditioner="jacobi"``: the diagonal of the Gauss–Newton matrix, estimated once,
    plus e^s·mask and the damping) and with the products over a subsample of ``hvp_rows``
    training rows (the unbiased subsampled Hessian of :func:`alloop.linalg.hvp_fn`: it solves
    a different, cheaper system; the exact path is ``hvp_rows=None``). Both are CG-only and
    ignored by "exact", like ``tol`` and ``max_iter``. Directions in
    ``model.null_space()`` (exact flat directions of the objective) are projected out of ``b``
    and ``x``: the solve is then the pseudo-inverse on that subspace.

    Mixed precision ("exact" only; ``mixed_precision=None``: on for a float64 softmax GLM
    on the CPU with its closed-form Hessian, off otherwise; True: for any float64 model with
    ``hessian_and_matmat``; False: never): H is assembled and factored in float32, and each solve
    is conjugate gradients on the exact float64 products H·V (matrix-free) preconditioned by
    that factor, to a float64 relative residual ≤ 1e-14 (:func:`alloop.linalg.refine.refined_solve`),
    as accurate as the float64 factor's solve at about half the cost of building it. If the
    float32 factor fails or the refinement stalls (H too ill-conditioned for float32, κ ≳ 1e6),
    this solve and every later one fall back to the float64 factor, and ``fallback`` says why
    (None while the refinement serves).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from alloop.models import LinearGLM
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0.0, 1.0, 2.0, 2.5])
    >>> model = LinearGLM(s=0.0).fit(X, y)
    >>> inverse = Inverse(model, "exact")
    >>> b = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> bool(torch.allclose(inverse(b), solve(model, b, "cg")))
    True

    Raises
    ------
    ValueError
        If H is singular (e.g. λ = 0 with fewer points than parameters) and no damping is set.
    """

    def __init__(
        self,
        model: DifferentiableModel,
        method: str = "exact",
        *,
        damping: float = 0.0,
        tol: float = 1e-12,
        max_iter: int | None = None,
        preconditioner: str | None = None,
        hvp_rows: int | None = None,
        mixed_precision: bool | None = None,
    ) -> None:
        if method not in SOLVERS:
            raise ValueError(f"unknown solver {method!r}; expected one of {SOLVERS}")
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(
                f"unknown preconditioner {preconditioner!r}; expected one of {PRECONDITIONERS}"
            )
        if hvp_rows is not None:
            check_rows(hvp_rows)
        self.model, self.method, self.damping = model, method, damping
        self.tol, self.max_iter = tol, max_iter
        self.preconditioner, self.hvp_rows = preconditioner, hvp_rows
        self.null = model.null_space()
        self._factor: torch.Tensor | None = None
        self._inverse_diagonal: torch.Tensor | None = None
        self._hvp: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.mixed_precision = mixed_precision
        self.fallback: str | None = None
        self._refine: tuple | None = None  # (exact product, preconditioner, ‖H‖ estimate)

    def _mixed(self) -> bool:
        """Whether the exact solves go through float32-preconditioned float64 refinement."""
        model, choice = self.model, self.mixed_precision
        if choice is False or self.method != "exact" or self.fallback is not None:
            return False
        if not (_closed_form(model) and hasattr(model, "hessian_and_matmat")):
            return False
        if model.theta_.dtype != torch.float64:
            return False
        if choice is None:
            return model.theta_.device.type == "cpu" and getattr(model, "likelihood", None) == "categorical"
        return True

    def _refined(self, B: torch.Tensor) -> torch.Tensor | None:
        """H⁻¹B by refinement (columns (p, m)); None (and ``fallback`` set) when it fails."""
        model, Q, damping = self.model, self.null, self.damping
        if self._refine is None:
            # float32 matrix and float64 products from one pass of the outputs
            H32, product = model.hessian_and_matmat(model.theta_, model.X_train_, torch.float32)
            if damping:
                H32.diagonal().add_(damping)
            if Q is not None:
                Q32 = Q.to(torch.float32)
                H32.addmm_(Q32, Q32.T)
            norm_h = norm_estimate(H32)
            L32, info = torch.linalg.cholesky_ex(H32)
            del H32
            if int(info) != 0:
                self.fallback = "the float32 Hessian is not numerically positive definite"
                return None

            def op(V: torch.Tensor) -> torch.Tensor:
                HV = product(V)
                if damping:
                    HV = HV + damping * V
                return HV if Q is None else HV + Q @ (Q.T @ V)

            def precondition(R: torch.Tensor) -> torch.Tensor:
                return torch.cholesky_solve(R.to(torch.float32), L32)

            self._refine = (op, precondition, norm_h)
        op, precondition, norm_h = self._refine
        x, converged = refined_solve(op, precondition, B, norm_h)
        if not converged:
            self.fallback = (
                "refinement with the float32 factor stalled (H too ill-conditioned for float32)"
            )
            self._refine = None
            return None
        return x

    def _factorized(self) -> torch.Tensor:
        if self._factor is None:
            H = hessian(self.model).clone()  # a copy of our own to add to in place (no p×p temporaries)
            if self.damping:
                H.diagonal().add_(self.damping)
            if self.null is not None:
                H.addmm_(self.null, self.null.T)
            what = f"the Hessian of {self.model!r} (λ = e^s = {self.model.lam:.3g})"
            self._factor = cholesky_with_jitter(H, what=what)
        return self._factor

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        """x = (H + δI)⁻¹b for one right-hand side (p,) or several (p, m)."""
        Q, model = self.null, self.model
        b = _project_out(Q, b)
        if self.method == "exact":
            B = b.unsqueeze(1) if b.dim() == 1 else b
            x = self._refined(B) if self._mixed() else None
            if x is None:
                x = torch.cholesky_solve(B, self._factorized())
            return _project_out(Q, x[:, 0] if b.dim() == 1 else x)
        if self._hvp is None:  # one linearisation of the gradient serves every solve
            self._hvp = hvp_fn(model, rows=self.hvp_rows)
        hvp = self._hvp
        damping = self.damping
        op = (lambda v: hvp(v) + damping * v) if damping else hvp
        precond = self._jacobi()
        kw = {"tol": self.tol, "max_iter": self.max_iter, "preconditioner": precond}
        if b.dim() == 1:
            return _project_out(Q, conjugate_gradient(op, b, **kw))
        # all right-hand sides in the same iterations: one batched H-product each (vmap over the
        # columns; torch has no batching rule for sparse products, so sparse X loops the columns)
        if model.X_train_ is not None and model.X_train_.is_sparse:
            batched = lambda V: torch.stack([op(V[:, j]) for j in range(V.shape[1])], 1)  # noqa: E731
        else:
            batched = torch.func.vmap(op, 1, 1)
        return _project_out(Q, conjugate_gradient(batched, b, **kw))

    def _jacobi(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """r ↦ D⁻¹r with D = diag(GN) + e^s·mask + δ on the HVPs' rows, built on first use."""
        if self.preconditioner is None:
            return None
        if self._inverse_diagonal is None:
            model = self.model
            X, weight = model.X_train_, 1.0
            if self.hvp_rows is not None:
                X, _, weight = subsample_rows(X, model.y_train_, self.hvp_rows)
            diagonal = weight * gauss_newton_diagonal(model, X=X)
            diagonal = diagonal + model.lam * model.penalty_mask() + self.damping
            # a zero diagonal entry (a parameter no row and no penalty reaches) is left unscaled
            self._inverse_diagonal = torch.where(diagonal > 0, 1.0 / diagonal, 1.0)
        inverse = self._inverse_diagonal
        return lambda R: inverse * R if R.dim() == 1 else inverse.unsqueeze(1) * R


def solve(
    model: DifferentiableModel,
    b: torch.Tensor,
    method: str = "exact",
    *,
    damping: float = 0.0,
    tol: float = 1e-12,
    max_iter: int | None = None,
    preconditioner: str | None = None,
    hvp_rows: int | None = None,
    mixed_precision: bool | None = None,
) -> torch.Tensor:
    """x = (H + damping·I)⁻¹ b at the model's θ*, for one right-hand side (p,) or several (p, m).

    One solve of :class:`Inverse` (which see, also for the CG-only ``preconditioner`` and
    ``hvp_rows`` and the exact path's ``mixed_precision``); keep an ``Inverse`` to solve again at the same fit without refactoring H.

    Raises
    ------
    ValueError
        If H is singular (e.g. λ = 0 with fewer points than parameters) and no damping is set.
    """
    inverse = Inverse(
        model, method, damping=damping, tol=tol, max_iter=max_iter,
        preconditioner=preconditioner, hvp_rows=hvp_rows, mixed_precision=mixed_precision,
    )
    return inverse(b)


def conjugate_gradient(
    op: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    *,
    tol: float = 1e-12,
    max_iter: int | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """(Preconditioned) conjugate gradients for A x = b with a symmetric positive-definite ``op``.

    ``b`` is one right-hand side (p,) or several (p, m); with several, ``op`` maps (p, m) to
    (p, m) column by column and every column runs its own CG (its own step sizes) in the same
    iterations, so one batched product serves all of them. ``preconditioner`` applies M⁻¹ ≈ A⁻¹
    (symmetric positive definite, same shapes as ``op``); ``x0`` is a starting point (e.g. the
    previous fit's solution), zero by default. A column stops moving once ‖r‖ ≤ tol·‖b‖.
    Warns if the iteration budget (default 10·p) runs out.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> x = conjugate_gradient(lambda v: A @ v, b, preconditioner=lambda r: r / A.diagonal())
    >>> bool(torch.allclose(A @ x, b))
    True
    """
    single = b.dim() == 1
    B = b.unsqueeze(1) if single else b
    apply = (lambda V: op(V[:, 0]).unsqueeze(1)) if single else op  # noqa: E731
    if preconditioner is None:
        precond = None
    elif single:
        precond = lambda R: preconditioner(R[:, 0]).unsqueeze(1)  # noqa: E731
    else:
        precond = preconditioner
    max_iter = 10 * B.shape[0] if max_iter is None else max_iter
    if x0 is None:
        x = torch.zeros_like(B)
        r = B.clone()
    else:
        x = (x0.unsqueeze(1) if single else x0).clone()
        if x.shape != B.shape:
            raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}; got {tuple(x0.shape)}")
        r = B - apply(x)
    z = r if precond is None else precond(r)
    p = z.clone()
    rz = (r * z).sum(0)
    rr = (r * r).sum(0)
    target = (tol * B.norm(dim=0)) ** 2
    for _ in range(max_iter):
        active = rr > target
        if not bool(active.any()):
            return x[:, 0] if single else x
        Ap = apply(p)
        curvature = (p * Ap).sum(0)
        if bool((curvature[active] <= 0).any()):
            raise ValueError(
                "conjugate gradients met non-positive curvature: the Hessian is not positive "
                "definite at θ* (not a minimum, or λ = 0); refit to convergence or add damping"
            )
        # converged columns keep x (α = 0) and p (β = 1); no division by their zero curvature
        alpha = torch.where(active, rz / torch.where(active, curvature, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * Ap
        z = r if precond is None else precond(r)
        rz_new = (r * z).sum(0)
        beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 1.0)
        p = torch.where(active, z + beta * p, p)
        rz = torch.where(active, rz_new, rz)
        rr = torch.where(active, (r * r).sum(0), rr)
    worst = float((rr.sqrt() / B.norm(dim=0).clamp_min(1e-300)).max())
    warnings.warn(
        f"conjugate gradients stopped after {max_iter} iterations with relative residual "
        f"{worst:.2e}",
        RuntimeWarning,
        stacklevel=2,
    )
    return x[:, 0] if single else x
