"""Regularity-tangent query heuristics (SLD, STI, SSI) and automatic regularity.

* :mod:`~alloop.regularity.heuristics` — closed forms over the model output and its JVPs.
* :mod:`~alloop.regularity.scores` (SLD, STI) and :mod:`~alloop.regularity.ssi` (SSI) — the
  scores of many rows for a fitted model, over :mod:`~alloop.regularity.batched`.
* :mod:`~alloop.regularity.hypergradient` — V(s), V'(s) = g_V·θ̇ and V''(s);
  :mod:`~alloop.regularity.search` — :func:`select_regularity`, which chooses s = log λ on a
  validation split with them.
* :mod:`~alloop.regularity.auto` — :class:`AutoRegularity`, that choice as the loop's
  ``regularity=`` hook (``loop_hook``: default settings).

The definitions are the project's own (docs/math.md §4).
"""

from alloop.regularity.auto import AutoRegularity, loop_hook
from alloop.regularity.hypergradient import (
    hypergradient,
    hypergradient_curvature,
    refit,
    validation_gradient,
    validation_hvp,
    validation_loss,
)
from alloop.regularity.scores import (
    regularity_loss_derivative,
    sld_scores,
    sti_direction,
    sti_scores,
)
from alloop.regularity.search import RegularitySelection, select_regularity
from alloop.regularity.ssi import SSIDirections, s_influence_scores, ssi_directions, ssi_scores

__all__ = [
    "AutoRegularity",
    "RegularitySelection",
    "SSIDirections",
    "hypergradient",
    "hypergradient_curvature",
    "loop_hook",
    "refit",
    "regularity_loss_derivative",
    "s_influence_scores",
    "select_regularity",
    "sld_scores",
    "ssi_directions",
    "ssi_scores",
    "sti_direction",
    "sti_scores",
    "validation_gradient",
    "validation_hvp",
    "validation_loss",
]
