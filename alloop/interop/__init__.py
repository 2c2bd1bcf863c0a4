"""Bridges to other active-learning libraries (modAL)."""

from alloop.interop.modal import (
    ActiveLearner,
    ModelAsLearner,
    QueryStrategy,
    as_query_strategy,
    context_from_learner,
    from_modal,
    model_from_learner,
)

__all__ = [
    "ActiveLearner",
    "ModelAsLearner",
    "QueryStrategy",
    "as_query_strategy",
    "context_from_learner",
    "from_modal",
    "model_from_learner",
]
