"""Capabilities a model may declare beyond :class:`~alloop.models.base.Model`.

:class:`OwnRegularityScores` — the model computes the regularity-tangent scores (SLD, STI, SSI)
itself, with its own tangents: e.g. :class:`alloop.multiuser.HierarchicalGLM`, whose s is the
vector (s_0, s_1) and whose tangents are block solves. The strategies of
:mod:`strategies.regularity` dispatch on it instead of on the model's class.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["OwnRegularityScores", "scores_itself"]


@runtime_checkable
class OwnRegularityScores(Protocol):
    """A model that scores candidates for the regularity strategies it names."""

    #: the strategy names it scores ("sld", "sti", "ssi")
    regularity_strategies: tuple[str, ...]

    def regularity_scores(
        self, name: str, X: Any, *, X_val: Any = None, y_val: Any = None, **options: Any
    ) -> np.ndarray: ...


def scores_itself(model: Any, strategy: str) -> bool:
    """Whether ``model`` declares its own scores for the strategy called ``strategy``."""
    return isinstance(model, OwnRegularityScores) and strategy in model.regularity_strategies
