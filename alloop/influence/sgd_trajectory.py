"""Minibatch SGD that records what influence estimators need: batch order, steps, checkpoints.

The update is (``docs/math.md`` §7)

    θ_{t+1} = θ_t − η_t [ (1/|B_t|) Σ_{i∈B_t} w_i ∇ℓ(z_i; θ_t) + ∇R(θ_t) ]

with w_i = 1. The weights exist for the counterfactual runs of :mod:`alloop.influence.loo`,
which set w_j = 0 for a removed sample and keep the normalisation 1/|B_t|. R is an optional
penalty that no sample owns (e.g. R = e^s·C(θ)/N, so that SGD minimises F/N and ends near the
model's θ*); removing a sample leaves it unchanged.

Everything is a pure function of ``loss(theta, X, y) -> per-point losses``. Given the recorded
trajectory, :func:`replay` regenerates every θ_t bit for bit, so estimators need not store the
whole path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import DTYPE, as_dense, rows

#: ``loss(theta, X, y)`` → per-point losses, shape (n,). Must be a pure function of ``theta``.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``penalty(theta)`` → scalar R(θ), added to every step and owned by no sample.
Penalty = Callable[[torch.Tensor], torch.Tensor]


def as_loss_fn(loss: LossFn | DifferentiableModel) -> LossFn:
    """The per-point loss of a model, or ``loss`` itself if it is already a function."""
    return loss.loss if isinstance(loss, DifferentiableModel) else loss


class ModelPenalty:
    """R(θ) = e^s·C(θ)/N: with it, SGD on the batch-mean loss minimises the model's F/N.

    Callable like any penalty; it also offers ``gradient`` and ``hvps`` (closed form for the
    default C = ½‖θ‖² over penalised parameters, ``torch.func`` otherwise), which the SGD
    loops use instead of differentiating R at every step.
    """

    def __init__(self, model: DifferentiableModel, n_samples: int) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be positive; got {n_samples}")
        self.model = model
        self.scale = float(np.exp(model.s)) / n_samples
        self._diagonal = None
        if type(model).complexity is DifferentiableModel.complexity:
            model._check_fitted()
            self._diagonal = self.scale * model.penalty_mask()

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.scale * self.model.complexity(theta)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∇R(θ)."""
        if self._diagonal is not None:
            return self._diagonal * theta
        return torch.func.grad(self)(theta)

    def hvps(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """Rows ∇²R(θ) v for every row v of V."""
        if self._diagonal is not None:
            return V * self._diagonal
        g = torch.func.grad(self)
        return torch.func.vmap(lambda v: torch.func.jvp(g, (theta,), (v,))[1])(V)


def model_penalty(model: DifferentiableModel, n_samples: int) -> ModelPenalty:
    """R(θ) = e^s·C(θ)/N for a fitted ``model`` and N training samples (see :class:`ModelPenalty`)."""
    return ModelPenalty(model, n_samples)


def penalty_gradient(penalty: Penalty | None, theta: torch.Tensor) -> torch.Tensor | None:
    """∇R(θ), by the penalty's own ``gradient`` if it has one, else ``torch.func.grad``."""
    if penalty is None:
        return None
    if hasattr(penalty, "gradient"):
        return penalty.gradient(theta)
    return torch.func.grad(penalty)(theta)


def penalty_hvps(penalty: Penalty | None, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Rows ∇²R(θ) v for every row v of V (zeros without a penalty)."""
    if penalty is None:
        return torch.zeros_like(V)
    if hasattr(penalty, "hvps"):
        return penalty.hvps(theta, V)
    g = torch.func.grad(penalty)
    return torch.func.vmap(lambda v: torch.func.jvp(g, (theta,), (v,))[1])(V)


@dataclass(frozen=True)
class SGDTrajectory:
    """A recorded minibatch SGD run.

    Attributes
    ----------
    theta0 : Tensor, shape (p,)
        Starting parameters.
    theta_final : Tensor, shape (p,)
        θ_T.
    lrs : Tensor, shape (T,)
        η_t of every step.
    batches : tuple of LongTensor, or None
        Sample indices of every step's minibatch, in order; ``None`` if the run did not record
        them (estimators then refuse to run).
    checkpoints : dict int → Tensor
        θ_t after t steps, for the recorded t (always includes 0 and T).
    n_samples : int
        N, the training-set size.
    """

    theta0: torch.Tensor
    theta_final: torch.Tensor
    lrs: torch.Tensor
    batches: tuple[torch.Tensor, ...] | None
    n_samples: int
    checkpoints: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.lrs.shape[0])

    def require_batches(self) -> tuple[torch.Tensor, ...]:
        """The recorded batch order; a clear error if the run did not keep it."""
        if self.batches is None:
            raise ValueError(
                "this SGD run did not record its batch order, which SGD influence estimates and "
                "counterfactual runs replay; rerun sgd_train(..., record_batches=True)"
            )
        return self.batches



def batch_gradient(
    loss: LossFn | DifferentiableModel,
    theta: torch.Tensor,
    X_batch: torch.Tensor,
    y_batch: torch.Tensor,
    weights: torch.Tensor | None = None,
    penalty: Penalty | None = None,
) -> torch.Tensor:
    """(1/|B|) Σ_{i∈B} w_i ∇ℓ(z_i; θ) + ∇R(θ); |B| counts every row, whatever the weights.

    An alloop GLM uses its closed-form per-point gradients; anything else ``torch.func.grad``.
    """
    w = torch.ones(X_batch.shape[0], dtype=DTYPE) if weights is None else weights
    if isinstance(loss, GLM):
        g = (w @ loss.per_point_grads(theta, X_batch, y_batch)) / X_batch.shape[0]
    else:
        loss_fn = as_loss_fn(loss)
        g = torch.func.grad(lambda t: (w * loss_fn(t, X_batch, y_batch)).sum() / X_batch.shape[0])(theta)
    gr = penalty_gradient(penalty, theta)
    return g if gr is None else g + gr


def _learning_rates(lr: float | Sequence[float] | Callable[[int], float], n_steps: int) -> torch.Tensor:
    if callable(lr):
        rates = [float(lr(t)) for t in range(n_steps)]
    elif np.ndim(lr) == 0:
        rates = [float(lr)] * n_steps
    else:
        rates = [float(r) for r in lr]
        if len(rates) != n_steps:
            raise ValueError(f"got {len(rates)} learning rates for {n_steps} steps")
    out = torch.tensor(rates, dtype=DTYPE)
    if not torch.all(torch.isfinite(out) & (out > 0)):
        raise ValueError("learning rates must be positive and finite")
    return out


def batch_order(
    n_samples: int, batch_size: int, epochs: int, seed: int = 0, drop_last: bool = False
) -> tuple[torch.Tensor, ...]:
    """Minibatches of a fresh random permutation each epoch (torch generator seeded by ``seed``)."""
    if n_samples < 1 or batch_size < 1 or epochs < 1:
        raise ValueError(
            f"need n_samples, batch_size and epochs ≥ 1; got {n_samples}, {batch_size}, {epochs}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    out: list[torch.Tensor] = []
    for _ in range(epochs):
        perm = torch.randperm(n_samples, generator=gen)
        for start in range(0, n_samples, batch_size):
            b = perm[start : start + batch_size]
            if drop_last and b.numel() < batch_size:
                break
            out.append(b)
    if not out:
        raise ValueError(f"batch_size {batch_size} > n_samples {n_samples} with drop_last: no steps")
    return tuple(out)


def _batch_rows(X: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return as_dense(rows(X, b)), y.index_select(0, b)


def sgd_train(
    loss: LossFn | DifferentiableModel,
    theta0: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float | Sequence[float] | Callable[[int], float],
    epochs: int,
    batch_size: int,
    penalty: Penalty | None = None,
    seed: int = 0,
    drop_last: bool = False,
    record_batches: bool = True,
    checkpoint_every: int | None = None,
) -> SGDTrajectory:
    """Run minibatch SGD and record its batch order, learning rates and checkpoints.

    Parameters
    ----------
    loss : callable or DifferentiableModel
        ``loss(theta, X, y)`` → per-point losses; a model stands for its ``model.loss``.
    theta0 : Tensor, shape (p,)
    X, y : Tensor
        Training features (float64) and encoded targets (``model.encode_y``).
    lr : float, sequence of T floats, or callable step → float
    epochs, batch_size : int
    penalty : callable, optional
        R(θ), see the module docstring and :func:`model_penalty`.
    seed : int
        Seeds the per-epoch permutations.
    record_batches : bool
        Keep the batch order (needed by every estimator; ``False`` only to save memory).
    checkpoint_every : int, optional
        Also keep θ_t every this many steps (TracIn uses them). 0 and T are always kept.

    Examples
    --------
    >>> import torch
    >>> X = torch.randn(20, 2, dtype=torch.float64); y = X @ torch.tensor([1.0, -1.0], dtype=torch.float64)
    >>> sq = lambda th, X, y: 0.5 * (X @ th - y) ** 2
    >>> run = sgd_train(sq, torch.zeros(2, dtype=torch.float64), X, y, lr=0.1, epochs=50, batch_size=5)
    >>> run.n_steps, torch.allclose(run.theta_final, torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-3)
    (200, True)
    """
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} targets")
    batches = batch_order(X.shape[0], batch_size, epochs, seed, drop_last)
    lrs = _learning_rates(lr, len(batches))
    theta = theta0.detach().to(DTYPE).clone()
    checkpoints = {0: theta.clone()}
    for t, b in enumerate(batches):
        Xb, yb = _batch_rows(X, y, b)
        theta = theta - lrs[t] * batch_gradient(loss, theta, Xb, yb, penalty=penalty)
        if checkpoint_every and (t + 1) % checkpoint_every == 0:
            checkpoints[t + 1] = theta.clone()
    checkpoints[len(batches)] = theta.clone()
    return SGDTrajectory(
        theta0=theta0.detach().to(DTYPE).clone(),
        theta_final=theta,
        lrs=lrs,
        batches=batches if record_batches else None,
        n_samples=int(X.shape[0]),
        checkpoints=checkpoints,
    )


def replay(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    penalty: Penalty | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (t, θ_t, batch indices B_t, η_t) for t = 0 … T−1 by re-running the recorded steps.

    The replay performs the same operations as :func:`sgd_train`, so it reproduces θ_t exactly;
    when the iteration is exhausted it checks that it reached the recorded θ_T, and raises if the
    loss, penalty or data differ from the recorded run's.
    """
    batches = trajectory.require_batches()
    if X.shape[0] != trajectory.n_samples:
        raise ValueError(
            f"the trajectory was recorded on {trajectory.n_samples} samples; got X with {X.shape[0]}"
        )
    theta = trajectory.theta0.clone()
    for t, b in enumerate(batches):
        eta = trajectory.lrs[t]
        yield t, theta, b, eta
        Xb, yb = _batch_rows(X, y, b)
        theta = theta - eta * batch_gradient(loss, theta, Xb, yb, penalty=penalty)
    if not torch.allclose(theta, trajectory.theta_final, rtol=1e-9, atol=1e-12):
        raise ValueError(
            "replaying the recorded batches did not reach the recorded θ_T (max difference "
            f"{(theta - trajectory.theta_final).abs().max():.3g}); pass the same loss, penalty, "
            "X and y that sgd_train was given"
        )


def per_sample_grads(
    loss: LossFn | DifferentiableModel, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Rows ∇ℓ(z_i; θ), shape (n, p): a model's ``per_point_grads``, else vmap'd ``grad``."""
    if isinstance(loss, DifferentiableModel):
        return loss.per_point_grads(theta, X, y)
    one = torch.func.grad(lambda t, x, yy: loss(t, x.unsqueeze(0), yy.unsqueeze(0))[0])
    return torch.func.vmap(one, in_dims=(None, 0, 0))(theta, as_dense(X), y)


def validation_gradient(
    loss: LossFn | DifferentiableModel, theta: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor
) -> torch.Tensor:
    """∇V(θ) with V the mean validation loss (1/n_val) Σ_j ℓ(z_j; θ)."""
    loss_fn = as_loss_fn(loss)
    Xv = as_dense(X_val)
    return torch.func.grad(lambda t: loss_fn(t, Xv, y_val).mean())(theta)


def validation_hessian(
    loss: LossFn | DifferentiableModel, theta: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor
) -> torch.Tensor:
    """∇²V(θ), dense (p, p): a GLM's closed form, else ``torch.func.hessian``. For small p."""
    if isinstance(loss, GLM):
        return loss.loss_hessian(theta, X_val) / X_val.shape[0]
    loss_fn = as_loss_fn(loss)
    Xv = as_dense(X_val)
    return torch.func.hessian(lambda t: loss_fn(t, Xv, y_val).mean())(theta)


def validation_loss(
    loss: LossFn | DifferentiableModel, theta: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor
) -> torch.Tensor:
    """V(θ) = (1/n_val) Σ_j ℓ(z_j; θ); ``theta`` may be (p,) or a stack (m, p)."""
    loss_fn = as_loss_fn(loss)
    Xv = as_dense(X_val)
    if theta.dim() == 1:
        return loss_fn(theta, Xv, y_val).mean()
    return torch.func.vmap(lambda t: loss_fn(t, Xv, y_val).mean())(theta)


__all__ = [
    "LossFn",
    "ModelPenalty",
    "Penalty",
    "SGDTrajectory",
    "as_loss_fn",
    "batch_gradient",
    "batch_order",
    "model_penalty",
    "penalty_gradient",
    "penalty_hvps",
    "per_sample_grads",
    "replay",
    "sgd_train",
    "validation_gradient",
    "validation_hessian",
    "validation_loss",
]
