"""Minibatch SGD on a model's objective with the regularity tangent: :func:`sgdf_train`.

The run itself (a pure function of a batch loss and a complexity) is
:func:`alloop.optim.sgdf.sgdf_run`, which models train with too. A GLM with its own objective
(``closed_form``) is stepped in closed form (:mod:`alloop.tangent.glm_steps`): no autograd.
"""

from __future__ import annotations

from typing import Any

import torch

from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import as_dense
from alloop.optim.sgdf import (
    Complexity,
    QuadraticPenalty,
    SGDFResult,
    learning_rates,
    minibatches,
    sgdf_run,
)
from alloop.tangent.glm_steps import glm_loss_gradient


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
    closed_form: bool | None = None,
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
    closed_form : bool, optional
        Step a GLM by its closed-form gradient and tangent (:func:`glm_loss_gradient`) rather
        than autograd; default: whenever the model is a GLM with its own objective
        (``model.closed_form``). Both give the same trajectory to rounding.
    **optimizer_options
        ``betas``, ``eps`` for Adam.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> model = LogisticGLM(s=0.0).fit(X, y)
    >>> res = sgdf_train(model, epochs=2, batch_size=2)  # closed-form GLM steps
    >>> res.theta.shape, res.tangent.shape, len(res.batch_order)
    (torch.Size([2]), torch.Size([2]), 4)
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
    glm = isinstance(model, GLM) and model.closed_form
    if closed_form is None:
        closed_form = glm
    elif closed_form and not glm:
        raise ValueError(
            f"closed_form=True needs a GLM with its own objective; {model!r} has none: "
            "leave closed_form unset (autograd)"
        )
    loss_gradient = batch_loss = None
    if closed_form:
        loss_gradient = glm_loss_gradient(
            X, y, likelihood=model.likelihood, n_outputs=model.n_outputs_,
            fit_intercept=model.fit_intercept, sigma2=model.sigma2,
        )
    else:
        def batch_loss(theta: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            # a batch of sparse rows is densified, as the GLM's dense path does
            return model.loss(theta, as_dense(X.index_select(0, index)), y[index]).sum()

    return sgdf_run(
        batch_loss,
        model_complexity(model),
        theta0,
        batches,
        learning_rates(lr, len(batches), schedule, lr_min),
        n=n,
        s=model.s,
        optimizer=optimizer,
        momentum=momentum,
        track_tangent=track_tangent,
        loss_gradient=loss_gradient,
        **optimizer_options,
    )


def model_complexity(model: DifferentiableModel) -> Complexity | QuadraticPenalty:
    """The model's C as :func:`sgdf_run` takes it: a :class:`QuadraticPenalty` on its penalty
    mask for the default ½‖θ‖² (differentiated in closed form), else its own ``complexity``."""
    if type(model).complexity is DifferentiableModel.complexity:
        return QuadraticPenalty(model.penalty_mask())
    return model.complexity
