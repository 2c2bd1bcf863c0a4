"""Bridges to other active-learning libraries (modAL)."""

from alloop.interop.modal import (
    ActiveLearner,
    ModelAsLearner,
    context_from_learner,
    from_modal,
    model_from_learner,
)

__all__ = [
    "ActiveLearner",
    "ModelAsLearner",
    "context_from_learner",
    "from_modal",
    "model_from_learner",
]
