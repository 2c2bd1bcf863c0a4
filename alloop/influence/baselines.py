"""Noisy-label baselines that :mod:`alloop.influence.fvm` is compared with: self-influence,
TracIn, the training loss, and the ROC AUC that scores them all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alloop.influence._inputs import encode_labels, fitted_theta
from alloop.influence.sgd_trajectory import LossFn, SGDTrajectory, per_sample_grads
from alloop.linalg import solve
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import DTYPE, as_features


def self_influence(
    model: DifferentiableModel, X: Any, y: Any, *, method: str = "exact", damping: float = 0.0
) -> torch.Tensor:
    """g(z)ᵀ H_tr⁻¹ g(z) at the fitted θ*, with H_tr the Hessian of the training objective F."""
    theta = fitted_theta(model, "self-influence")
    Xt = as_features(X)
    yt = encode_labels(model, y, "labels", Xt.shape[0])
    G = model.per_point_grads(theta, Xt, yt)
    return (G * solve(model, G.T.contiguous(), method, damping=damping).T).sum(dim=1)


def tracin_self_influence(
    trajectory: SGDTrajectory,
    loss: LossFn | DifferentiableModel,
    X: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """TracIn self-influence Σ_c η_c ‖∇ℓ(z; θ_c)‖² over the run's checkpoints c ≥ 1.

    η_c is the learning rate of the step that produced checkpoint c. ``X`` and ``y`` are
    tensors (encoded targets), like the run's. Record checkpoints with
    ``sgd_train(..., checkpoint_every=...)``.
    """
    steps = sorted(c for c in trajectory.checkpoints if c >= 1)
    if not steps:
        raise ValueError("the SGD run kept no checkpoint after step 0; nothing to sum")
    out = torch.zeros(X.shape[0], dtype=DTYPE)
    for c in steps:
        G = per_sample_grads(loss, trajectory.checkpoints[c], X, y)
        out = out + trajectory.lrs[c - 1] * (G * G).sum(dim=1)
    return out


def training_loss(model: DifferentiableModel, X: Any, y: Any) -> torch.Tensor:
    """ℓ(z; θ*) per point: the loss baseline for noisy-label detection."""
    theta = fitted_theta(model, "the loss baseline")
    Xt = as_features(X)
    yt = encode_labels(model, y, "labels", Xt.shape[0])
    with torch.no_grad():
        return model.loss(theta, Xt, yt)


def detection_auc(scores: Any, corrupted: Any) -> float:
    """ROC AUC of ``scores`` (higher = more suspect) separating corrupted from clean labels."""
    from sklearn.metrics import roc_auc_score

    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    c = np.asarray(corrupted).astype(bool).reshape(-1)
    if s.reshape(-1).shape != c.shape:
        raise ValueError(f"got {s.size} scores for {c.size} corruption flags")
    if c.all() or not c.any():
        raise ValueError("the ROC AUC needs both corrupted and clean points among the flags")
    return float(roc_auc_score(c, s.reshape(-1)))
