"""LiSSA: a stochastic Neumann-series solve of H x = b with minibatch Hessian-vector products.

The iteration x ← x − α((H_B + δI) x − b), with θ held at θ*, is gradient descent on the
quadratic ½xᵀ(H + δI)x − bᵀx with stochastic curvature; its fixed point in expectation is
x = (H + δI)⁻¹ b, and it contracts when 0 < α·λ(H_B + δI) < 2 for every batch. H_B is the
batch estimate of the FULL Hessian of F = Σℓ + e^s C: H_B = (n/|B|) Σ_{i∈B} ∇²ℓ_i + e^s ∇²C,
so E[H_B] = H. For the regularity tangent b = −ρ, so each step reads θ̇ ← θ̇ − α(H_B θ̇ + ρ)
(docs/math.md §2).

Averaging the last ``tail`` fraction of the iterates (Polyak–Ruppert) removes most of the
minibatch noise around the fixed point.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from alloop.models.tensors import as_dense
from alloop.optim.sgdf import minibatches
from alloop.tangent.rhs import regularity_rhs

if TYPE_CHECKING:
    from alloop.models.base import DifferentiableModel

#: ``batch_hvp(v, index) -> H_B v`` for a 1-D ``torch.long`` tensor of row numbers.
BatchHVP = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lissa_solve(
    batch_hvp: BatchHVP,
    b: torch.Tensor,
    batches: Sequence[np.ndarray],
    *,
    step: float,
    damping: float = 0.0,
    tail: float = 0.5,
) -> torch.Tensor:
    """Approximate (H + δI)⁻¹ b by x ← x − α((H_B + δI) x − b) over ``batches``.

    Parameters
    ----------
    batch_hvp : callable
        ``batch_hvp(v, index)`` = H_B v, an unbiased minibatch estimate of H v.
    b : torch.Tensor
        Right-hand side, shape (p,).
    batches : sequence of index arrays
        One Hessian estimate per step (see :func:`alloop.optim.sgdf.minibatches`).
    step : float
        α > 0; convergence needs α·λ_max(H_B + δI) < 2 (α ≈ 1/λ_max(H) is a good start).
    damping : float
        δ ≥ 0 added to the Hessian: needed when H is singular or not positive definite.
    tail : float
        Fraction of final iterates to average, in [0, 1); 0 returns the last iterate.

    Raises
    ------
    FloatingPointError
        If the iterates blow up: α too large for the Hessian, or H not positive definite.

    Examples
    --------
    >>> H = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> x = lissa_solve(lambda v, i: H @ v, torch.ones(2, dtype=torch.float64), [None] * 200, step=0.5)
    >>> [round(v, 6) for v in x.tolist()]
    [0.5, 1.0]
    """
    if not step > 0:
        raise ValueError(f"the LiSSA step α must be positive; got {step!r}")
    if damping < 0:
        raise ValueError(f"damping must be ≥ 0; got {damping!r}")
    if not 0 <= tail < 1:
        raise ValueError(f"tail must lie in [0, 1); got {tail!r}")
    n_steps = len(batches)
    start_avg = n_steps - int(tail * n_steps)
    x = torch.zeros_like(b)
    avg = torch.zeros_like(b)
    bound = 1e12 * (b.norm() / step + 1.0)  # far beyond any fixed point reachable with this α
    for t, batch in enumerate(batches):
        index = None if batch is None else torch.as_tensor(np.asarray(batch), dtype=torch.long)
        r = batch_hvp(x, index) - b
        if damping:
            r = r + damping * x
        x = x - step * r
        if t >= start_avg:
            avg += x
        if (t % 32 == 0 or t == n_steps - 1) and not (
            bool(torch.isfinite(x).all()) and x.norm() <= bound
        ):
            raise FloatingPointError(
                f"LiSSA diverged at step {t}: the step α = {step:.3g} is too large for the "
                "Hessian (needs α·λ_max < 2), or H is not positive definite; lower `step` "
                "or add `damping`"
            )
    return avg / (n_steps - start_avg) if n_steps > start_avg else x


def largest_eigenvalue(
    hvp: Callable[[torch.Tensor], torch.Tensor], p: int, iterations: int = 30, seed: int = 0,
    like: torch.Tensor | None = None,
) -> float:
    """λ_max of a symmetric positive semi-definite operator by power iteration.

    The start vector is drawn in float64 on the CPU (the same on every device), then takes the
    dtype and device of ``like`` (the operator's parameters) when given.
    """
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(p, generator=gen, dtype=torch.float64)
    if like is not None:
        v = v.to(like.device, like.dtype)
    v = v / v.norm()
    value = 0.0
    for _ in range(iterations):
        w = hvp(v)
        value = float(v @ w)
        norm = w.norm()
        if norm == 0:
            return 0.0
        v = w / norm
    return value


def lissa_tangent(
    model: DifferentiableModel,
    *,
    step: float | None = None,
    damping: float = 0.0,
    epochs: int = 20,
    batch_size: int = 128,
    seed: int = 0,
    tail: float = 0.5,
    warn_residual: float = 0.1,
) -> torch.Tensor:
    """θ̇ ≈ −(H + δI)⁻¹ρ for a fitted model by :func:`lissa_solve` over reshuffled minibatches.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model; θ is held at its θ* and batches come from its training data.
    step : float, optional
        α; default 0.5/λ_max(H + δI), λ_max by power iteration on the Hessian of up to 2048
        training rows.
    damping, tail
        As in :func:`lissa_solve`.
    epochs, batch_size, seed
        ``epochs`` passes over the training data in batches of ``batch_size``.
    warn_residual : float
        Warn when the relative residual ‖(H + δI)θ̇ + ρ‖/‖ρ‖ (one full Hessian-vector
        product) exceeds this: more epochs, a larger batch or damping are needed.
    """
    theta, X, y = model.theta_, model.X_train_, model.y_train_
    n = X.shape[0]
    lam = float(np.exp(model.s))
    Q = model.null_space()
    rho = regularity_rhs(model)
    if Q is not None:
        rho = rho - Q @ (Q.T @ rho)

    def batch_hvp(v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.to(X.device)  # the batch indices are drawn on the CPU
        Xb, yb = as_dense(X.index_select(0, index)), y[index]  # forward AD: no sparse matmul
        scale = n / len(index)

        def objective(t: torch.Tensor) -> torch.Tensor:
            return scale * model.loss(t, Xb, yb).sum() + lam * model.complexity(t)

        return torch.func.jvp(torch.func.grad(objective), (theta,), (v,))[1]

    def full_hvp(v: torch.Tensor) -> torch.Tensor:  # H v, one pass over the data in chunks
        chunks = torch.arange(n).split(max(batch_size, 1024))
        return sum((len(c) / n) * batch_hvp(v, c) for c in chunks)

    if step is None:
        # λ_max from a subsample of up to 2048 rows: close to the full H's, at a fraction of the cost
        probe = torch.as_tensor(np.random.default_rng(seed).permutation(n)[:2048])
        top = largest_eigenvalue(
            lambda v: batch_hvp(v, probe), theta.numel(), seed=seed, like=theta
        )
        top += damping
        if not top > 0:
            raise ValueError(_not_positive_definite(model, f"its dominant eigenvalue is {top:.3g}"))
        step = 0.5 / top
    x = lissa_solve(
        batch_hvp, -rho, minibatches(n, batch_size, epochs, seed),
        step=step, damping=damping, tail=tail,
    )
    if Q is not None:
        x = x - Q @ (Q.T @ x)
    Hx = full_hvp(x) + damping * x
    curvature = float(x @ Hx)
    if x.norm() > 0 and not curvature > 0:
        raise ValueError(_not_positive_definite(model, f"x·Hx = {curvature:.3g} ≤ 0 at the result"))
    rel = float((Hx + rho).norm() / rho.norm()) if rho.norm() > 0 else 0.0
    if rel > warn_residual:
        warnings.warn(
            f"LiSSA tangent has relative residual {rel:.2e} after {epochs} epochs (step "
            f"{step:.3g}); raise epochs or batch_size, or add damping",
            RuntimeWarning,
            stacklevel=2,
        )
    return x


def _not_positive_definite(model: DifferentiableModel, detail: str) -> str:
    return (
        f"the Hessian of {model!r} is not positive definite ({detail}): θ is not a minimum "
        "(fit to convergence) or λ is too small; LiSSA needs damping > 0 there"
    )
