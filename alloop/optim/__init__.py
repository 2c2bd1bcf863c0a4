"""Minibatch optimisers over plain callables (a batch loss, a complexity): no model, no data."""

from alloop.optim.sgdf import (
    OPTIMIZERS,
    SCHEDULES,
    LossGradient,
    QuadraticPenalty,
    SGDFResult,
    batch_gradient,
    learning_rates,
    minibatches,
    sgdf_run,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "LossGradient",
    "QuadraticPenalty",
    "SGDFResult",
    "batch_gradient",
    "learning_rates",
    "minibatches",
    "sgdf_run",
]
