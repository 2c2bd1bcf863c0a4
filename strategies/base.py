"""A strategy is a small scoring function, usable in alloop's loop and as a modAL strategy.

``score(model, X_pool, **context) -> np.ndarray`` returns one finite float per pool row;
higher means "ask first". ``context`` may hold ``X_labeled``, ``y_labeled``, ``X_val``,
``y_val`` and ``rng`` (a ``numpy.random.Generator``); a scorer takes what it needs and
ignores the rest through ``**_``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Scorer = Callable[..., np.ndarray]

#: Capabilities a scorer may require of the model.
NEEDS = ("proba", "gradients", "labeled", "validation", "regression", "classification")


@dataclass(frozen=True)
class Strategy:
    """A named scorer plus the batch rule it prefers.

    Calling the object with modAL's signature ``(learner, X_pool, n_instances=1, **kw)``
    returns ``(indices, scores)``, so it can be an ``ActiveLearner``'s ``query_strategy``.
    """

    name: str
    description: str
    scorer: Scorer
    needs: tuple[str, ...] = ()
    #: default batch rule: "topk", "diverse" (clustered top candidates) or "kcenter".
    batch: str = "topk"

    def score(self, model: Any, X_pool: Any, **context: Any) -> np.ndarray:
        """Scores for every row of ``X_pool`` (higher = ask first)."""
        n = X_pool.shape[0]
        if n == 0:
            raise ValueError("the pool is empty: there is nothing left to score")
        scores = np.asarray(self.scorer(model, X_pool, **context), dtype=np.float64).reshape(-1)
        if scores.shape[0] != n:
            raise RuntimeError(
                f"strategy {self.name!r} returned {scores.shape[0]} scores for {n} pool items"
            )
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(
                f"strategy {self.name!r} produced {int((~np.isfinite(scores)).sum())} non-finite "
                "scores; the model may be ill-conditioned (try a larger regularization s)"
            )
        return scores

    def __call__(
        self, learner: Any, X_pool: Any, n_instances: int = 1, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """modAL ``query_strategy``: ``(indices of the chosen rows, their scores)``.

        It always returns a tuple; modAL calls a strategy a second time when the first call
        raises or returns something else.
        """
        from alloop.engine.select import select_batch
        from alloop.interop.modal import context_from_learner, model_from_learner

        model = model_from_learner(learner, self)
        context = {**context_from_learner(learner), **kwargs}
        rng = context.setdefault("rng", np.random.default_rng(0))
        scores = self.score(model, X_pool, **context)
        index = select_batch(
            scores, n_instances, self.batch, X_pool=X_pool,
            X_labeled=context.get("X_labeled"), rng=rng,
        )
        return index, scores[index]


def check_compatible(strategy: Strategy, model: Any) -> None:
    """Raise a clear error if ``model`` lacks what ``strategy`` needs.

    The message names the strategy, the missing capability and the models that have it.
    """
    from alloop.models.base import DifferentiableModel, NotDifferentiableError

    task = getattr(model, "task", None)
    if "classification" in strategy.needs and task != "classification":
        raise ValueError(
            f"strategy {strategy.name!r} needs a classifier; the model is a {task} model. "
            "For regression use 'random', 'max-std', 'egl', 'coreset' or a tangent strategy."
        )
    if "regression" in strategy.needs and task != "regression":
        raise ValueError(f"strategy {strategy.name!r} is for regression models; got a {task} model")
    if "proba" in strategy.needs and not hasattr(model, "predict_proba"):
        raise ValueError(f"strategy {strategy.name!r} needs predict_proba; {model!r} has none")
    if "gradients" in strategy.needs and not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"strategy {strategy.name!r} needs gradients of a differentiable model; "
            f"{type(getattr(model, 'estimator', model)).__name__} is not one. Supported: alloop's "
            "GLMs (linear, logistic, softmax) and torch MLPs, and scikit-learn LogisticRegression "
            "(l2) and Ridge through their GLM mapping."
        )
