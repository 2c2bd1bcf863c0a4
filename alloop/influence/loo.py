"""Counterfactual leave-one-out SGD (the ground truth of SGD influence) and agreement metrics.

The counterfactual run for sample j replays the recorded run with the same initial θ_0, the
same batch order and the same learning rates, and drops j from every batch that holds it. The
step keeps the normalisation of the full batch:

    θ'_{t+1} = θ'_t − η_t [ (1/|B_t|) Σ_{i∈B_t, i≠j} ∇ℓ(z_i; θ'_t) + ∇R(θ'_t) ]

(1/|B_t|, not 1/(|B_t| − 1): the convention of the SGD-IE and ACC-SGD-IE recurrences).
All requested counterfactual runs advance together, vmapped over their parameter vectors.

Metrics follow the ACC-SGD-IE paper: RMSE, Kendall's τ and the Jaccard index of the top
{10, 30, 50, 70}% samples.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.stats
import torch

from alloop.influence.sgd_trajectory import (
    LossFn,
    Penalty,
    SGDTrajectory,
    batch_gradient,
    validation_loss,
)
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import DTYPE, as_dense, rows


def counterfactual_sgd(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    penalty: Penalty | None = None,
    samples: Any | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """θ'_T(j): the final parameters of the recorded run with sample j left out, for each j.

    Parameters
    ----------
    trajectory : SGDTrajectory
        A run that recorded its batch order.
    loss, penalty
        The loss and penalty the run used.
    X, y : Tensor
        The run's training data.
    samples : array-like of int, optional
        Which samples to leave out, one run each (default all N).
    chunk_size : int, optional
        Passed to ``torch.func.vmap`` to bound memory.

    Returns
    -------
    Tensor, shape (m, p)
    """
    batches = trajectory.require_batches()
    idx = (
        torch.arange(trajectory.n_samples)
        if samples is None
        else torch.as_tensor(samples, dtype=torch.long).reshape(-1)
    )
    if idx.numel() and (idx.min() < 0 or idx.max() >= trajectory.n_samples):
        raise ValueError(f"sample indices must lie in [0, {trajectory.n_samples})")
    thetas = trajectory.theta0.to(DTYPE).unsqueeze(0).repeat(idx.numel(), 1)
    for t, b in enumerate(batches):
        Xb, yb = as_dense(rows(X, b)), y.index_select(0, b)
        W = (idx.view(-1, 1) != b.view(1, -1)).to(DTYPE)  # 0 where the left-out sample sits
        step = torch.func.vmap(
            lambda th, w, Xb=Xb, yb=yb: batch_gradient(loss, th, Xb, yb, w, penalty),
            chunk_size=chunk_size,
        )(thetas, W)
        thetas = thetas - trajectory.lrs[t] * step
    return thetas


def loo_deviation(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    penalty: Penalty | None = None,
    samples: Any | None = None,
) -> torch.Tensor:
    """True δ_T(j) = θ'_T(j) − θ_T, shape (m, p)."""
    return counterfactual_sgd(trajectory, loss, X, y, penalty=penalty, samples=samples) - trajectory.theta_final


def loo_loss_change(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
    X_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    penalty: Penalty | None = None,
    samples: Any | None = None,
) -> torch.Tensor:
    """True ΔV_j = V(θ'_T(j)) − V(θ_T) with V the mean validation loss, shape (m,)."""
    thetas = counterfactual_sgd(trajectory, loss, X, y, penalty=penalty, samples=samples)
    base = validation_loss(loss, trajectory.theta_final, X_val, y_val)
    return validation_loss(loss, thetas, X_val, y_val) - base


# ----------------------------------------------------------------------------- metrics
def _flat(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64).reshape(-1)


def _pair(estimate: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    e, t = _flat(estimate), _flat(truth)
    if e.shape != t.shape:
        raise ValueError(f"estimate has {e.size} values, truth {t.size}")
    if e.size == 0:
        raise ValueError("no values to compare")
    return e, t


def rmse(estimate: Any, truth: Any) -> float:
    """Root mean squared error between estimated and true influence."""
    e, t = _pair(estimate, truth)
    return float(np.sqrt(np.mean((e - t) ** 2)))


def kendall_tau(estimate: Any, truth: Any) -> float:
    """Kendall's τ-b rank correlation (``scipy.stats.kendalltau``)."""
    e, t = _pair(estimate, truth)
    return float(scipy.stats.kendalltau(e, t).statistic)


def jaccard_top(
    estimate: Any,
    truth: Any,
    fraction: float,
    order: Literal["descending", "ascending", "abs"] = "descending",
) -> float:
    """Jaccard index |A ∩ B| / |A ∪ B| of the top ``fraction`` samples under each ranking.

    ``order`` ranks by value (largest ΔV first: the samples whose removal raises the validation
    loss most), by ascending value, or by magnitude. The top set holds round(fraction · n)
    samples, at least one.
    """
    e, t = _pair(estimate, truth)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction!r}")
    key = {"descending": lambda a: -a, "ascending": lambda a: a, "abs": lambda a: -np.abs(a)}
    if order not in key:
        raise ValueError(f"unknown order {order!r}; expected 'descending', 'ascending' or 'abs'")
    k = max(1, int(round(fraction * e.size)))
    top_e = set(np.argsort(key[order](e), kind="stable")[:k].tolist())
    top_t = set(np.argsort(key[order](t), kind="stable")[:k].tolist())
    return len(top_e & top_t) / len(top_e | top_t)


def influence_metrics(
    estimate: Any,
    truth: Any,
    fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7),
    order: Literal["descending", "ascending", "abs"] = "descending",
) -> dict[str, float]:
    """RMSE, Kendall's τ and Jaccard@{fractions} of an influence estimate against the truth.

    Examples
    --------
    >>> m = influence_metrics([0.1, 0.2, 0.3, 0.4], [0.1, 0.25, 0.3, 0.5], fractions=(0.5,))
    >>> sorted(m), m["kendall_tau"]
    (['jaccard@50%', 'kendall_tau', 'rmse'], 1.0)
    """
    out = {"rmse": rmse(estimate, truth), "kendall_tau": kendall_tau(estimate, truth)}
    for f in fractions:
        out[f"jaccard@{round(100 * f)}%"] = jaccard_top(estimate, truth, f, order)
    return out
