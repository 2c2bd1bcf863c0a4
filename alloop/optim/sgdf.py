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

Cost. Per step, ∇F̃_B(θ) and its derivative along (θ̇, ds = 1),

    H̃_B θ̇ + ∂_s ∇F̃_B = (1/|B|) Σ_B ∇²ℓ_i θ̇ + (e^s/n)(∇²C θ̇ + ∇C),

come from one differentiated gradient of the batch loss (:func:`batch_gradient`: a
Hessian-vector product by a second backward pass, the cheapest of fwAD dual numbers,
``torch.func.jvp(torch.func.grad)`` and double backward measured on an MLP), or from a
closed form the caller supplies (``loss_gradient``: a GLM's X_Bᵀr and X_Bᵀ(Λ X_B θ̇), no
autograd). A :class:`QuadraticPenalty` C is differentiated in closed form, so the
regularizer's s-derivative needs no dual number either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "linear", "cosine")

#: ``batch_loss(theta, index) -> Σ_{i∈index} ℓ(z_i; θ)`` (a scalar tensor); ``index`` is a
#: 1-D ``torch.long`` tensor of row numbers.
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: ``loss_gradient(theta, index, theta_dot) -> (ḡ, ḡ̇)``: the batch's MEAN loss gradient
#: ḡ = (1/|B|) Σ_{i∈B} ∇ℓ_i(θ) and, when ``theta_dot`` is not None, its derivative
#: (1/|B|) Σ_{i∈B} ∇²ℓ_i(θ) θ̇ (else None). A closed form in place of autograd on a BatchLoss.
LossGradient = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None"], "tuple[torch.Tensor, torch.Tensor | None]"
]


@dataclass(frozen=True)
class QuadraticPenalty:
    """C(θ) = ½ Σ_j m_j θ_j² (weight decay on the parameters where the mask m is 1).

    Called like any complexity; :func:`batch_gradient` uses its closed-form ∇C = m ⊙ θ and
    ∇²C v = m ⊙ v instead of differentiating it.

    Examples
    --------
    >>> C = QuadraticPenalty(torch.tensor([1.0, 0.0]))
    >>> C(torch.tensor([2.0, 3.0])).item(), C.grad(torch.tensor([2.0, 3.0])).tolist()
    (2.0, [2.0, 0.0])
    """

    mask: torch.Tensor

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.sum(self.mask * theta**2)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """∇C(θ) = m ⊙ θ."""
        return self.mask * theta

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """∇²C v = m ⊙ v (C is quadratic: no θ)."""
        return self.mask * v


Complexity = Callable[[torch.Tensor], torch.Tensor]


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
        self.m = torch.add(g, self.m, alpha=self.beta)
        if g_dot is not None:
            self.m_dot = torch.add(g_dot, self.m_dot, alpha=self.beta)
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
    batch_loss: BatchLoss | None,
    complexity: Complexity | QuadraticPenalty,
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
    loss_gradient: LossGradient | None = None,
) -> SGDFResult:
    """Minibatch training of F(θ; s) = Σℓ + e^s C, optionally carrying θ̇ = dθ_t/ds.

    A pure function of its callables: it knows nothing of models or data containers, so it
    serves any :class:`~alloop.models.DifferentiableModel` (GLMs trained by SGD included) and
    the same loop with ``track_tangent=False`` is plain training along the same trajectory.

    Parameters
    ----------
    batch_loss : callable or None
        ``batch_loss(theta, index)`` = Σ_{i∈index} ℓ(z_i; θ), summed (not averaged); ``index``
        is a 1-D ``torch.long`` tensor. None when ``loss_gradient`` is given.
    complexity : callable or QuadraticPenalty
        C(θ); a :class:`QuadraticPenalty` is differentiated in closed form.
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
        Carry θ̇ (one Hessian-vector product per step) or not (one gradient per step).
    loss_gradient : callable, optional
        The batch's mean loss gradient and its tangent in closed form (:data:`LossGradient`),
        used instead of autograd on ``batch_loss`` (give exactly one of the two).

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
    if (batch_loss is None) == (loss_gradient is None):
        raise ValueError(
            "give sgdf_run exactly one of batch_loss (differentiated by autograd) and "
            f"loss_gradient (a closed form); got batch_loss={batch_loss!r}, "
            f"loss_gradient={loss_gradient!r}"
        )
    theta = theta0.detach().clone()
    theta_dot = torch.zeros_like(theta) if track_tangent else None
    state = _SGD(theta, momentum) if optimizer == "sgd" else _Adam(theta, betas, eps)
    # every index tensor made once, before the loop, on θ's device
    order = [np.asarray(b) for b in batches]
    indexes = torch.as_tensor(np.concatenate(order) if order else np.zeros(0), dtype=torch.long,
                              device=theta.device).split([len(b) for b in order])
    weight = float(np.exp(s)) / n

    for t, (index, lr) in enumerate(zip(indexes, lrs, strict=True), start=1):
        if loss_gradient is None:
            g, g_dot = batch_gradient(batch_loss, complexity, theta, index, n=n, s=s, theta_dot=theta_dot)
        else:
            g, g_dot = loss_gradient(theta, index, theta_dot)
            g, g_dot = _add_penalty(complexity, weight, theta, theta_dot, g, g_dot)
        d, d_dot = state.direction(g, g_dot, t)
        theta = torch.add(theta, d, alpha=-lr)
        if track_tangent:
            theta_dot = torch.add(theta_dot, d_dot, alpha=-lr)
        if t % 64 == 0 or t == len(lrs):
            _check_finite(theta, theta_dot, t, lr)
    return SGDFResult(
        theta=theta.detach(),
        tangent=None if theta_dot is None else theta_dot.detach(),
        batch_order=order,
        lrs=[float(r) for r in lrs],
    )


def batch_gradient(
    batch_loss: BatchLoss,
    complexity: Complexity | QuadraticPenalty,
    theta: torch.Tensor,
    index: torch.Tensor,
    *,
    n: int,
    s: float,
    theta_dot: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """∇F̃_B(θ; s) and, given θ̇, its derivative along (θ̇, ds = 1): H̃_B θ̇ + ρ/n.

    F̃_B = (1/|B|) Σ_{i∈B} ℓ_i + (e^s/n) C. With θ̇, the batch loss's gradient is taken with
    its graph and differentiated once more along θ̇ (reverse over reverse: (∇²ℓ)θ̇ = ∇(∇ℓ·θ̇),
    as the Hessian is symmetric); on an MLP 64-256-256-10 this measured faster than fwAD dual
    numbers (which run several ops through Python decompositions) and ``torch.func.jvp`` of
    ``torch.func.grad``, with the same product to 1e-17. Without θ̇ it is one backward pass.

    Examples
    --------
    ℓ = ½(θ − 1)² on one point, C = ½θ²: ∇F̃ = (θ − 1) + e^s θ/n, H̃θ̇ + ρ/n = θ̇ + e^s(θ̇ + θ)/n.

    >>> loss = lambda t, i: 0.5 * ((t - 1.0) ** 2).sum()
    >>> theta = torch.tensor([3.0], dtype=torch.float64)
    >>> g, g_dot = batch_gradient(loss, QuadraticPenalty(torch.ones(1, dtype=torch.float64)),
    ...                           theta, torch.arange(1), n=2, s=0.0,
    ...                           theta_dot=torch.tensor([1.0], dtype=torch.float64))
    >>> g.item(), g_dot.item()
    (3.5, 3.0)
    """
    m = len(index)
    weight = float(np.exp(s)) / n
    leaf = theta.detach().requires_grad_(True)
    closed = isinstance(complexity, QuadraticPenalty)
    if theta_dot is None:
        value = batch_loss(leaf, index) / m
        if not closed:
            value = value + weight * complexity(leaf)
        (g,) = torch.autograd.grad(value, leaf)
        return (g + weight * complexity.grad(theta) if closed else g), None
    (g_loss,) = torch.autograd.grad(batch_loss(leaf, index) / m, leaf, create_graph=True)
    if g_loss.requires_grad:
        (h_loss,) = torch.autograd.grad(g_loss, leaf, theta_dot, allow_unused=True)
    else:  # a loss linear in θ: its gradient is a constant
        h_loss = None
    h_loss = torch.zeros_like(theta) if h_loss is None else h_loss
    return _add_penalty(complexity, weight, theta, theta_dot, g_loss.detach(), h_loss)


def _add_penalty(
    complexity: Complexity | QuadraticPenalty,
    weight: float,
    theta: torch.Tensor,
    theta_dot: torch.Tensor | None,
    g: torch.Tensor,
    g_dot: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ḡ + w∇C, ḡ̇ + w(∇²C θ̇ + ∇C)) with w = e^s/n: the regularizer's part of the step and of
    its s-derivative (∂_s (e^s/n) ∇C = w ∇C)."""
    if isinstance(complexity, QuadraticPenalty):
        grad_c = complexity.grad(theta)
        if theta_dot is None:
            return torch.add(g, grad_c, alpha=weight), None
        # ∇²C θ̇ + ∇C = m ⊙ (θ̇ + θ): one product
        return torch.add(g, grad_c, alpha=weight), torch.add(
            g_dot, complexity.hvp(theta_dot + theta), alpha=weight
        )
    leaf = theta.detach().requires_grad_(True)
    (grad_c,) = torch.autograd.grad(
        complexity(leaf), leaf, create_graph=theta_dot is not None, allow_unused=True
    )
    grad_c = torch.zeros_like(theta) if grad_c is None else grad_c
    hvp_c = None
    if theta_dot is not None:
        hvp_c = torch.zeros_like(theta)
        if grad_c.requires_grad:
            (h,) = torch.autograd.grad(grad_c, leaf, theta_dot, allow_unused=True)
            hvp_c = hvp_c if h is None else h
        grad_c = grad_c.detach()
    g = torch.add(g, grad_c, alpha=weight)
    if theta_dot is None:
        return g, None
    return g, torch.add(g_dot, hvp_c + grad_c, alpha=weight)


def _check_finite(theta: torch.Tensor, theta_dot: torch.Tensor | None, step: int, lr: float) -> None:
    bad_theta = not bool(torch.isfinite(theta).all())
    if bad_theta or (theta_dot is not None and not bool(torch.isfinite(theta_dot).all())):
        what = "the parameters" if bad_theta else "the tangent"
        raise FloatingPointError(
            f"minibatch training diverged by step {step}: {what} are not finite (lr = {lr:.3g}); "
            "lower the learning rate or raise s"
        )
