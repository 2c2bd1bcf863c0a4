"""SGD influence estimators: SGD-IE and ACC-SGD-IE (``docs/math.md`` §7).

Removing sample j from a recorded SGD run (same seeds and batch order, j dropped from every
batch holding it, the step still divided by |B_t|) moves the parameters by δ_t(j) = θ'_t − θ_t.
Both estimators propagate δ along the recorded trajectory:

    SGD-IE:      δ_{t+1} = (I − η_t H_{B_t}) δ_t + 1[j∈B_t] (η_t/|B_t|) g_j(θ_t)
    ACC-SGD-IE:  δ_{t+1} = (I − η_t H_{B_t}) δ_t + 1[j∈B_t] (η_t/|B_t|) (g_j(θ_t) + H_j(θ_t) δ_t)

H_B = (1/|B|) Σ_{i∈B} ∇²ℓ_i + ∇²R is the batch-mean Hessian (with the penalty R that no sample
owns); H_j = ∇²ℓ_j. ACC-SGD-IE is the exact first-order recurrence: the counterfactual batch
lacks j, so its Hessian is H_B − H_j/|B|. SGD-IE drops that term.

All N samples' δ are propagated together as one N × p matrix: for GLMs with the closed form
H_B V = (1/|B|) X̃_Bᵀ (Λ_B ⊙ (X̃_B V)) (per row of V, reshaped to the (d+1) × K weight layout);
for other models with ``torch.func.vmap`` of forward-over-reverse Hessian-vector products of
``loss(theta, X, y)``.

The change of the validation loss is then ΔV_j ≈ ∇V(θ_T)·δ_T(j) (:func:`loss_change`).
:func:`sgd_ie_backward` computes SGD-IE's ΔV for every sample with one backward vector
(Hara et al. 2019), which costs one Hessian-vector product per step instead of N.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from alloop.influence.sgd_trajectory import (
    LossFn,
    Penalty,
    SGDTrajectory,
    as_loss_fn,
    penalty_hvps,
    replay,
)
from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import DTYPE, as_dense, rows

Estimator = Literal["acc", "sgd"]


class _AutodiffCurvature:
    """Per-sample gradients and Hessian-vector products of a generic per-point loss."""

    def __init__(self, loss: LossFn) -> None:
        self.loss = loss

    def _point_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(theta, x.unsqueeze(0), y.unsqueeze(0))[0]

    def point_grads(self, theta, X, y):
        return torch.func.vmap(torch.func.grad(self._point_loss), in_dims=(None, 0, 0))(theta, X, y)

    def point_hvps(self, theta, X, y, V):
        """Rows H_j(θ) v_j."""
        def one(x, yy, v):
            g = torch.func.grad(lambda t: self._point_loss(t, x, yy))
            return torch.func.jvp(g, (theta,), (v,))[1]

        return torch.func.vmap(one)(X, y, V)

    def batch_hvps(self, theta, X, y, V):
        """Rows (1/|B|) Σ_{i∈B} H_i(θ) v for every row v of V."""
        g = torch.func.grad(lambda t: self.loss(t, X, y).mean())
        return torch.func.vmap(lambda v: torch.func.jvp(g, (theta,), (v,))[1])(V)


class _GLMCurvature:
    """The same quantities in closed form for a GLM: g_i = x̃_i ⊗ r_i, H_i = x̃_i x̃_iᵀ ⊗ Λ_i."""

    def __init__(self, model: GLM) -> None:
        if model.n_features_ is None:
            raise ValueError(
                f"{model!r} has no parameter layout yet; fit it (or call init_params) first"
            )
        self.model = model
        self.shape = (model.n_features_ + int(model.fit_intercept), model.n_outputs_)

    def point_grads(self, theta, X, y):
        return self.model.per_point_grads(theta, X, y)

    def _lam(self, theta, X):
        m = self.model
        return lk.output_hessian(m.likelihood, m.output(theta, X), m.sigma2)

    def point_hvps(self, theta, X, y, V):
        Xd = self.model.design(X)
        Vr = V.reshape(V.shape[0], *self.shape)
        u = torch.einsum("br,brk->bk", Xd, Vr)
        w = torch.einsum("bkl,bl->bk", self._lam(theta, X), u)
        return (Xd.unsqueeze(2) * w.unsqueeze(1)).reshape(V.shape[0], -1)

    def batch_hvps(self, theta, X, y, V):
        Xd = self.model.design(X)
        Vr = V.reshape(V.shape[0], *self.shape)
        u = torch.einsum("br,mrk->mbk", Xd, Vr)
        w = torch.einsum("bkl,mbl->mbk", self._lam(theta, X), u)
        return torch.einsum("br,mbk->mrk", Xd, w).reshape(V.shape[0], -1) / X.shape[0]


def _curvature(loss: LossFn | DifferentiableModel) -> _AutodiffCurvature | _GLMCurvature:
    if isinstance(loss, GLM):
        return _GLMCurvature(loss)
    return _AutodiffCurvature(as_loss_fn(loss))


def _sample_index(n_samples: int, samples: Any | None) -> torch.Tensor:
    if samples is None:
        return torch.arange(n_samples)
    idx = torch.as_tensor(samples, dtype=torch.long).reshape(-1)
    if idx.numel() and (idx.min() < 0 or idx.max() >= n_samples):
        raise ValueError(f"sample indices must lie in [0, {n_samples}); got {idx.tolist()!r}")
    if torch.unique(idx).numel() != idx.numel():
        raise ValueError("sample indices must be distinct")
    return idx


def sgd_influence(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    estimator: Estimator = "acc",
    penalty: Penalty | None = None,
    samples: Any | None = None,
) -> torch.Tensor:
    """δ_T(j) ≈ θ'_T(j) − θ_T for every tracked sample j, by SGD-IE or ACC-SGD-IE.

    Parameters
    ----------
    trajectory : SGDTrajectory
        A run of :func:`alloop.influence.sgd_train` that recorded its batch order.
    loss : callable or DifferentiableModel
        The loss the run used. An alloop GLM selects the closed-form products; a function or
        another model uses ``torch.func`` (vmap'd Hessian-vector products).
    X, y : Tensor
        The run's training data (features float64, encoded targets).
    estimator : {"acc", "sgd"}
        ACC-SGD-IE (with the per-occurrence Hessian correction) or SGD-IE.
    penalty : callable, optional
        The penalty R(θ) the run used.
    samples : array-like of int, optional
        Which samples to track (default all N).

    Returns
    -------
    Tensor, shape (m, p)
        One row per tracked sample, in the order of ``samples``.

    Raises
    ------
    ValueError
        If the run did not record its batch order, or if replaying it with this loss, penalty
        and data does not reproduce the recorded θ_T.
    """
    if estimator not in ("acc", "sgd"):
        raise ValueError(f"unknown estimator {estimator!r}; expected 'acc' (ACC-SGD-IE) or 'sgd' (SGD-IE)")
    trajectory.require_batches()
    curv = _curvature(loss)
    idx = _sample_index(trajectory.n_samples, samples)
    slot = torch.full((trajectory.n_samples,), -1, dtype=torch.long)
    slot[idx] = torch.arange(idx.numel())
    D = torch.zeros(idx.numel(), trajectory.theta0.numel(), dtype=DTYPE)
    for _, theta, b, eta in replay(trajectory, loss, X, y, penalty):
        Xb, yb = as_dense(rows(X, b)), y.index_select(0, b)
        new = D - eta * (curv.batch_hvps(theta, Xb, yb, D) + penalty_hvps(penalty, theta, D))
        hit = slot[b] >= 0
        if hit.any():
            where = slot[b][hit]
            Xj, yj = Xb[hit], yb[hit]
            inject = curv.point_grads(theta, Xj, yj)
            if estimator == "acc":
                inject = inject + curv.point_hvps(theta, Xj, yj, D[where])
            new[where] += (eta / b.numel()) * inject
        D = new
    return D


def loss_change(
    delta: torch.Tensor, val_grad: torch.Tensor, val_hessian: torch.Tensor | None = None
) -> torch.Tensor:
    """Estimated change of the validation loss if j is left out, from δ_T(j).

    ΔV_j ≈ ∇V(θ_T)·δ_T(j) (``docs/math.md`` §7); with ``val_hessian`` = ∇²V(θ_T) (see
    :func:`alloop.influence.validation_hessian`) the second-order term ½ δᵀ∇²V δ is added.
    When a single sample moves θ_T noticeably (small N), that term is as large as the
    estimators' own error, so it is needed to compare estimators on ΔV.
    """
    out = delta @ val_grad
    if val_hessian is not None:
        out = out + 0.5 * ((delta @ val_hessian) * delta).sum(dim=-1)
    return out


def sgd_ie_backward(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    val_grad: torch.Tensor,
    *,
    penalty: Penalty | None = None,
) -> torch.Tensor:
    """SGD-IE's ΔV_j for every sample with one backward vector (Hara et al. 2019).

    u_T = ∇V(θ_T), u_t = (I − η_t H_{B_t}) u_{t+1}; ΔV_j = Σ_{t: j∈B_t} (η_t/|B_t|) g_j(θ_t)·u_{t+1}.
    Equal to ``loss_change(sgd_influence(..., estimator="sgd"), val_grad)`` up to rounding, at
    one Hessian-vector product per step. It keeps θ_t of every step (T × p floats).

    Returns
    -------
    Tensor, shape (N,)
    """
    curv = _curvature(loss)
    path = [(theta, b, eta) for _, theta, b, eta in replay(trajectory, loss, X, y, penalty)]
    u = val_grad.clone().to(DTYPE)
    dV = torch.zeros(trajectory.n_samples, dtype=DTYPE)
    for theta, b, eta in reversed(path):
        Xb, yb = as_dense(rows(X, b)), y.index_select(0, b)
        dV[b] += (eta / b.numel()) * (curv.point_grads(theta, Xb, yb) @ u)
        Hu = curv.batch_hvps(theta, Xb, yb, u.unsqueeze(0)) + penalty_hvps(penalty, theta, u.unsqueeze(0))
        u = u - eta * Hu[0]
    return dV
