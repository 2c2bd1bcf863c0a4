"""Minibatch SGD on a model's objective with the regularity tangent: :func:`sgdf_train`.

The run itself (a pure function of a batch loss and a complexity) is
:func:`alloop.optim.sgdf.sgdf_run`, which models train with too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from alloop.models.tensors import as_dense
from alloop.optim.sgdf import SGDFResult, learning_rates, minibatches, sgdf_run

if TYPE_CHECKING:
    from alloop.models.base import DifferentiableModel


def sgdf_train(
    model: DifferentiableModel,
    X: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    theta0: torch.Tensor | None = None,
    optimizer: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.0,
    epochs: int = 100,
    batch_size: int = 32,
    schedule: str = "constant",
    lr_min: float = 0.0,
    seed: int = 0,
    track_tangent: bool = True,
    **optimizer_options: Any,
) -> SGDFResult:
    """Train a model's objective by minibatch SGD with :func:`sgdf_run`; the model is unchanged.

    Meant for models whose own ``fit`` is not SGD (GLMs fit by Newton): fit the model once so
    it knows its layout and encoded data, then run this and read θ_T and θ̇ from the result.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model: its ``loss``, ``complexity`` and ``s`` define the objective.
    X, y : torch.Tensor, optional
        Encoded training data; default ``model.X_train_`` / ``model.y_train_``.
    theta0 : torch.Tensor, optional
        Starting point; default zeros (right for GLMs; a network needs its random init).
    optimizer, lr, momentum, epochs, batch_size, schedule, lr_min, seed, track_tangent
        As in :func:`sgdf_run`, :func:`minibatches` and :func:`learning_rates`.
    **optimizer_options
        ``betas``, ``eps`` for Adam.
    """
    if model.theta_ is None:
        raise RuntimeError(
            f"sgdf_train needs a fitted {type(model).__name__} for its layout and data; "
            "call model.fit(X, y) first"
        )
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    theta0 = torch.zeros_like(model.theta_) if theta0 is None else theta0
    n = X.shape[0]
    batches = minibatches(n, batch_size, epochs, seed)

    def batch_loss(theta: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        # a batch of sparse rows is densified: forward AD does not support sparse matmul
        return model.loss(theta, as_dense(X.index_select(0, index)), y[index]).sum()

    return sgdf_run(
        batch_loss,
        model.complexity,
        theta0,
        batches,
        learning_rates(lr, len(batches), schedule, lr_min),
        n=n,
        s=model.s,
        optimizer=optimizer,
        momentum=momentum,
        track_tangent=track_tangent,
        **optimizer_options,
    )
