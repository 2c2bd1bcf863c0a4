"""SGDF: minibatch SGD that carries the regularity tangent along by forward-mode differentiation.

Scaling. A minibatch step uses the mean-scaled batch objective

    F̃_B(θ; s) = (1/|B|) Σ_{i∈B} ℓ(z_i; θ) + (e^s/n) C(θ),

whose average over the batches of an epoch is F(θ; s)/n with F = Σ_i ℓ + e^s C the training
objective (docs/math.md §1). The minimiser θ*(s) is therefore the same; only the learning rate
is measured on the per-point scale, as in ordinary minibatch training.

Tangent. Every step θ ← θ − η ∇F̃_B(θ) is paired with its derivative in s,

    θ̇ ← θ̇ − η (H̃_B θ̇ + ρ/n),     H̃_B = ∇²_θ F̃_B = H_B/n,   ρ = e^s ∇C(θ),

(H_B = (n/|B|) Σ_B ∇²ℓ + e^s ∇²C, the batch estimate of the full Hessian). With momentum the
buffer carries its own tangent: ṁ ← βṁ + (H̃_B θ̇ + ρ/n), θ̇ ← θ̇ − ηṁ; Adam is differentiated
the same way. θ₀ does not depend on s, so θ̇_t is exactly dθ_t/ds along the recorded trajectory,
and where the iterates settle at θ* it reaches the fixed point H θ̇ + ρ = 0, i.e. θ̇ = −H⁻¹ρ.

Cost. ∇F̃_B(θ) and H̃_B θ̇ + ∂_s ∇F̃_B come from ONE forward-mode derivative (a jvp) of
(θ, s) ↦ ∇F̃_B(θ; s) with tangent (θ̇, 1): forward-over-reverse, a small constant times a plain
gradient step (:func:`batch_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "linear", "cosine")

#: ``batch_loss(theta, index) -> Σ_{i∈index} ℓ(z_i; θ)`` (a scalar tensor); ``index`` is a
#: 1-D ``torch.long`` tensor of row numbers.
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SGDFResult:
    """The end of a minibatch run.

    Attributes
    ----------
    theta : torch.Tensor
        Final parameters θ_T, shape (p,).
    tangent : torch.Tensor or None
        dθ_T/ds, shape (p,); ``None`` when the tangent was not tracked.
    batch_order : list of numpy.ndarray
        The index array of every step, in order.
    lrs : list of float
        The learning rate of every step.
    """

    theta: torch.Tensor
    tangent: torch.Tensor | None
    batch_order: list[np.ndarray] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)


def minibatches(n: int, batch_size: int, epochs: int, seed: int = 0) -> list[np.ndarray]:
    """Index arrays of ``epochs`` passes over ``range(n)``, reshuffled every epoch.

    The last batch of an epoch is smaller when ``batch_size`` does not divide ``n``.

    Examples
    --------
    >>> [b.tolist() for b in minibatches(5, 2, 1, seed=0)]
    [[2, 4], [3, 0], [1]]
    """
    if n < 1 or batch_size < 1 or epochs < 0:
        raise ValueError(
            f"need n ≥ 1, batch_size ≥ 1 and epochs ≥ 0; got n={n}, batch_size={batch_size}, "
            f"epochs={epochs}"
        )
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        out.extend(perm[i : i + batch_size] for i in range(0, n, batch_size))
    return out


def learning_rates(
    lr: float, n_steps: int, schedule: str = "constant", lr_min: float = 0.0
) -> list[float]:
    """Per-step learning rates: constant, or decaying from ``lr`` towards ``lr_min``.

    ``"linear"`` and ``"cosine"`` reach ``lr_min`` one step after the last.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {SCHEDULES}")
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive; got lr={lr!r}")
    frac = np.arange(n_steps) / max(n_steps, 1)
    if schedule == "constant":
        rates = np.full(n_steps, lr)
    elif schedule == "linear":
        rates = lr_min + (lr - lr_min) * (1.0 - frac)
    else:
        rates = lr_min + (lr - lr_min) * 0.5 * (1.0 + np.cos(np.pi * frac))
    return rates.tolist()


# An optimizer maps the batch gradient g (and its tangent ġ, or None) at step t = 1, 2, … to
# the update direction d (and ḋ): θ ← θ − η d, θ̇ ← θ̇ − η ḋ.
Direction = tuple[torch.Tensor, torch.Tensor | None]


class _SGD:
    """m ← βm + g, d = m (PyTorch's convention; β = 0 is plain SGD), and ṁ ← βṁ + ġ."""

    def __init__(self, theta: torch.Tensor, momentum: float) -> None:
        self.beta = momentum
        self.m = torch.zeros_like(theta)
        self.m_dot = torch.zeros_like(theta)

    def direction(self, g: torch.Tensor, g_dot: torch.Tensor | None, t: int) -> Direction:
        if not self.beta:
            return g, g_dot
        self.m = self.beta * self.m + g
        if g_dot is not None:
            self.m_dot = self.beta * self.m_dot + g_dot
        return self.m, (self.m_dot if g_dot is not None else None)


class _Adam:
    """Adam (PyTorch's convention, bias-corrected) and its exact derivative."""

    def __init__(self, theta: torch.Tensor, betas: tuple[float, float], eps: float) -> None:
        self.b1, self.b2 = betas
        self.eps = eps
        self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
        self.m_dot, self.v_dot = torch.zeros_like(theta), torch.zeros_like(theta)

    def direction(self, g: torch.Tensor, g_dot: torch.Tensor | None, t: int) -> Direction:
        b1, b2 = self.b1, self.b2
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        c1, c2 = 1 - b1**t, 1 - b2**t
        root = (self.v / c2).sqrt()
        denom = root + self.eps
        d = (self.m / c1) / denom
        if g_dot is None:
            return d, None
        self.m_dot = b1 * self.m_dot + (1 - b1) * g_dot
        self.v_dot = b2 * self.v_dot + 2 * (1 - b2) * g * g_dot
        # d(√v̂) = v̂̇ / (2√v̂); where v̂ = 0 every gradient so far was 0, so v̇ = 0 too.
        droot = torch.where(root > 0, (self.v_dot / c2) / (2 * root.clamp_min(1e-300)), 0.0)
        d_dot = (self.m_dot / c1) / denom - d * droot / denom
        return d, d_dot


def sgdf_run(
    batch_loss: BatchLoss,
    complexity: Callable[[torch.Tensor], torch.Tensor],
    theta0: torch.Tensor,
    batches: Sequence[np.ndarray],
    lrs: Sequence[float],
    *,
    n: int,
    s: float,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    track_tangent: bool = True,
) -> SGDFResult:
    """Minibatch training of F(θ; s) = Σℓ + e^s C, optionally carrying θ̇ = dθ_t/ds.

    A pure function of its callables: it knows nothing of models or data containers, so it
    serves any :class:`~alloop.models.DifferentiableModel` (GLMs trained by SGD included) and
    the same loop with ``track_tangent=False`` is plain training along the same trajectory.

    Parameters
    ----------
    batch_loss : callable
        ``batch_loss(theta, index)`` = Σ_{i∈index} ℓ(z_i; θ), summed (not averaged); ``index``
        is a 1-D ``torch.long`` tensor.
    complexity : callable
        C(θ).
    theta0 : torch.Tensor
        Starting parameters (independent of s, so the tangent starts at 0).
    batches, lrs : sequences
        The index array and learning rate of each step (see :func:`minibatches`,
        :func:`learning_rates`).
    n : int
        Number of training points (the regularizer weighs e^s/n per step; module docstring).
    s : float
        log λ.
    optimizer : {"sgd", "adam"}
        ``"sgd"`` with optional heavy-ball ``momentum``; ``"adam"`` with ``betas``, ``eps``.
    track_tangent : bool
        Carry θ̇ (one jvp per step) or not (one gradient per step).

    Returns
    -------
    SGDFResult

    Examples
    --------
    Ridge regression through the origin on one feature: θ* = Σxy/(Σx² + λ).

    >>> X = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64); Y = 2 * X
    >>> loss = lambda t, i: 0.5 * ((Y[i] - X[i] * t) ** 2).sum()
    >>> res = sgdf_run(loss, lambda t: 0.5 * (t**2).sum(), torch.zeros(1, dtype=torch.float64),
    ...                [np.arange(3)] * 300, [0.2] * 300, n=3, s=0.0)
    >>> round(res.theta.item(), 6), round(res.tangent.item(), 6)  # 28/15, −28/15²
    (1.866667, -0.124444)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} for minibatch training; expected {OPTIMIZERS}")
    if len(batches) != len(lrs):
        raise ValueError(f"got {len(batches)} batches but {len(lrs)} learning rates")
    theta = theta0.detach().clone()
    theta_dot = torch.zeros_like(theta) if track_tangent else None
    state = _SGD(theta, momentum) if optimizer == "sgd" else _Adam(theta, betas, eps)

    for t, (batch, lr) in enumerate(zip(batches, lrs, strict=True), start=1):
        index = torch.as_tensor(np.asarray(batch), dtype=torch.long)
        g, g_dot = batch_gradient(batch_loss, complexity, theta, index, n=n, s=s, theta_dot=theta_dot)
        d, d_dot = state.direction(g, g_dot, t)
        theta = theta - lr * d
        if track_tangent:
            theta_dot = theta_dot - lr * d_dot
        if t % 64 == 0 or t == len(lrs):
            _check_finite(theta, theta_dot, t, lr)
    return SGDFResult(
        theta=theta.detach(),
        tangent=None if theta_dot is None else theta_dot.detach(),
        batch_order=[np.asarray(b) for b in batches],
        lrs=[float(r) for r in lrs],
    )


def batch_gradient(
    batch_loss: BatchLoss,
    complexity: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    index: torch.Tensor,
    *,
    n: int,
    s: float,
    theta_dot: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """∇F̃_B(θ; s) and, given θ̇, its derivative along (θ̇, ds = 1): H̃_B θ̇ + ρ/n.

    F̃_B = (1/|B|) Σ_{i∈B} ℓ_i + (e^s/n) C. With θ̇ the reverse pass runs on dual numbers
    carrying the tangent (θ̇, 1) of (θ, s): forward-over-reverse, one differentiated gradient
    evaluation (the same product as ``torch.func.jvp`` of ``torch.func.grad``, with less
    overhead per call). Without θ̇ it is one ordinary backward pass.
    """
    m = len(index)
    if theta_dot is None:
        leaf = theta.detach().requires_grad_(True)
        value = batch_loss(leaf, index) / m + float(np.exp(s)) / n * complexity(leaf)
        return torch.autograd.grad(value, leaf)[0], None
    with fwAD.dual_level():
        leaf = fwAD.make_dual(theta.detach().requires_grad_(True), theta_dot)
        one = torch.ones((), dtype=theta.dtype, device=theta.device)
        s_dual = fwAD.make_dual(torch.tensor(float(s), dtype=theta.dtype, device=theta.device), one)
        value = batch_loss(leaf, index) / m + torch.exp(s_dual) / n * complexity(leaf)
        (grad,) = torch.autograd.grad(value, leaf)
        g, g_dot = fwAD.unpack_dual(grad)
    return g.detach(), (torch.zeros_like(g) if g_dot is None else g_dot.detach())


def _check_finite(theta: torch.Tensor, theta_dot: torch.Tensor | None, step: int, lr: float) -> None:
    bad_theta = not bool(torch.isfinite(theta).all())
    if bad_theta or (theta_dot is not None and not bool(torch.isfinite(theta_dot).all())):
        what = "the parameters" if bad_theta else "the tangent"
        raise FloatingPointError(
            f"minibatch training diverged by step {step}: {what} are not finite (lr = {lr:.3g}); "
            "lower the learning rate or raise s"
        )
