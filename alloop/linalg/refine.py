"""Mixed-precision solves: a float32 Cholesky factor as the preconditioner of float64 CG.

A dense Hessian costs O(n·p²) to assemble and O(p³) to factor; both run about twice as fast in
float32 (half the memory traffic, twice the SIMD width). Its factor L₃₂ alone solves to only
≈ κ(H)·1e-7, but as the preconditioner M = L₃₂L₃₂ᵀ of conjugate gradients whose residuals
r = b − Hx use the exact float64 product (matrix-free, ≈ 2·n·p·K multiply-adds for a softmax
GLM, far below the assembly), each iteration shrinks the error by ≈ ‖I − M⁻¹H‖ ≈ κ(H)·1e-7: a
few iterations reach a float64 residual ‖r‖ ≤ tol·‖b‖. This is the float64 solution itself,
not an approximation of it: the float64 dense Cholesky solve has a residual of the same order.

When refinement stalls (κ(H) near 1e7 or beyond, where the float32 factor no longer says much
about H), :func:`refined_solve` says so by returning ``converged=False`` and the caller falls
back to a float64 factor (:class:`alloop.linalg.Inverse` does that on its own).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: backward error ‖b − Hx‖ / (‖H‖·‖x‖ + ‖b‖) a refined solve must reach, ≈ 4.5 float64
#: epsilons (the float64 dense Cholesky solves of benchmarks/scoring.py's softmax GLM reach
#: 1.5e-16–3.8e-16 for s = 0 … −12, the refined ones the same or less)
REFINE_TOL = 1e-15
#: iterations before a refinement counts as stalled (a well-conditioned H needs 2–4)
REFINE_MAX_ITER = 30


def refined_solve(
    op: Callable[[torch.Tensor], torch.Tensor],
    precondition: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    norm_h: float,
    *,
    tol: float = REFINE_TOL,
    max_iter: int = REFINE_MAX_ITER,
) -> tuple[torch.Tensor, bool]:
    """(x, converged): x with ‖b − op(x)‖ ≤ tol·(‖H‖·‖x‖ + ‖b‖) per column.

    ``op`` is the exact product with a symmetric positive-definite H in b's precision (one
    vector (p,) or columns (p, m)); ``precondition`` applies an approximate H⁻¹ of any
    precision, always to columns (p, m) (its output is cast back to b's dtype); ``norm_h``
    is ‖H‖₂ or an estimate of it (:func:`norm_estimate`). The test is on the backward error,
    as a dense solve's accuracy is: a float64 Cholesky solve has ‖b − Hx‖ ≈ 1e-16·‖H‖·‖x‖,
    which for an ill-conditioned H is far above 1e-16·‖b‖, and so is the rounding of the
    product Hx itself.

    First iterative refinement, x ← x + M⁻¹(b − Hx), one product per step, each residual the
    true one; while every step shrinks every residual at least tenfold (a good preconditioner:
    ≈ κ(H)·1e-7 per step for a float32 factor) it converges in a few steps. Otherwise CG,
    preconditioned by M, goes on from the best iterate (β of Polak–Ribière, which tolerates a
    preconditioner that is only nearly linear, a float32 solve); its residual is recomputed
    from x before it reports convergence, so ``converged`` is about the true residual.
    ``converged`` is False when the budget runs out, the residual stops shrinking, or CG
    meets non-positive curvature; x is then the best iterate and should not be used.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> L = torch.linalg.cholesky(A.float())
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> M = lambda r: torch.cholesky_solve(r.float(), L)
    >>> x, ok = refined_solve(lambda v: A @ v, M, b, 4.62)
    >>> ok, bool((A @ x - b).norm() <= 1e-14 * b.norm())
    (True, True)
    """
    single = b.dim() == 1
    B = b.unsqueeze(1) if single else b
    apply = (lambda V: op(V[:, 0]).unsqueeze(1)) if single else op  # noqa: E731

    def prec(R: torch.Tensor) -> torch.Tensor:
        return precondition(R).to(B.dtype)

    def done(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return (x[:, 0] if single else x), True

    b_norm = B.norm(dim=0)
    # iterative refinement while it contracts fast
    x, r, norm = torch.zeros_like(B), B, b_norm
    steps = 0
    while steps < max_iter:
        x_new = x + prec(r)
        r_new = B - apply(x_new)
        steps += 1
        norm_new = r_new.norm(dim=0)
        target = tol * (norm_h * x_new.norm(dim=0) + b_norm)
        if bool((norm_new <= target).all()):
            return done(x_new)
        if not bool(((norm_new <= 0.1 * norm) | (norm_new <= target)).all()):
            if bool((norm_new < norm).all()):
                x, r, norm = x_new, r_new, norm_new
            break  # too slow: CG from the best iterate
        x, r, norm = x_new, r_new, norm_new
    # preconditioned CG from x (true residual r)
    best = norm
    stalled, restart = 0, True
    r_old, rz, p = r, torch.ones_like(b_norm), r  # set by the first iteration (restart)
    while steps < max_iter:
        target = tol * (norm_h * x.norm(dim=0) + b_norm)
        active = norm > target
        z = prec(r)
        if restart:
            p, restart = z, False
        else:
            p = z + torch.where(active, (z * (r - r_old)).sum(0) / rz, 0.0) * p
        rz = (r * z).sum(0)
        Ap = apply(p)
        steps += 1
        curvature = (p * Ap).sum(0)
        if bool((curvature[active] <= 0).any()):
            break  # not positive definite in float64, or the preconditioner lost it
        alpha = torch.where(active, rz / torch.where(active, curvature, 1.0), 0.0)
        x = x + alpha * p
        r_old, r = r, r - alpha * Ap
        norm = r.norm(dim=0)
        target = tol * (norm_h * x.norm(dim=0) + b_norm)
        if bool((norm <= target).all()):
            r = B - apply(x)  # the true residual, not the recursion's
            steps += 1
            norm = r.norm(dim=0)
            if bool((norm <= target).all()):
                return done(x)
            restart = True  # go on from the true residual
        # progress: every column still above its target at least halved its best residual
        progress = bool(((norm < 0.5 * best) | (norm <= target)).all())
        best = torch.minimum(best, norm)
        stalled = 0 if progress else stalled + 1
        if stalled >= 3:
            break
    return (x[:, 0] if single else x), False


def norm_estimate(H: torch.Tensor, iterations: int = 8) -> float:
    """‖H‖₂ of a symmetric positive semi-definite H, by power iteration from the all-ones vector
    (a lower bound, within a few percent after a few iterations when the top eigenvalue stands
    out; never below the largest diagonal entry)."""
    v = torch.ones(H.shape[0], dtype=H.dtype, device=H.device)
    estimate = 0.0
    for _ in range(iterations):
        w = H @ v
        norm = float(w.norm())
        if norm == 0.0:
            break
        estimate = norm / float(v.norm())
        v = w / norm
    return max(estimate, float(H.diagonal().max()))
