"""Hierarchical multi-user regularization (docs/math.md §5).

Per-user GLMs θ_u tied to a global θ_0,

    F = Σ_u [Σ_{i∈D_u} ℓ(z_i; θ_u) + e^{s_1}·½‖θ_u − θ_0‖²] + e^{s_0}·½‖Mθ_0‖²,

fitted by block Newton through the Schur complement (linear in the number of users), with
regularity tangents for s_0 and s_1 by the block formulas, automatic choice of (s_0, s_1) by
hypergradients on a validation split, and SLD / STI scores of (user, item) candidates.

* :class:`HierarchicalGLM` — the model (:mod:`.model`);
* :class:`ArrowSystem` — the block solver of its Hessian (:mod:`.schur`);
* :func:`block_tangents`, :class:`BlockTangents` — dθ/ds_0, dθ/ds_1 (:mod:`.tangent`);
* :func:`select_hyperparameters`, :func:`validation_hypergradient` — (s_0, s_1) from validation
  (:mod:`.regularity`);
* :func:`sld_scores`, :func:`sti_scores`, :func:`select_candidates` — multi-user queries
  (:mod:`.queries`).
"""

from alloop.multiuser.model import HierarchicalGLM
from alloop.multiuser.queries import select_candidates, sld_scores, sti_directions, sti_scores
from alloop.multiuser.regularity import (
    HyperparameterSelection,
    select_hyperparameters,
    validation_hypergradient,
)
from alloop.multiuser.schur import ArrowSystem
from alloop.multiuser.tangent import HYPERPARAMETERS, BlockTangents, block_tangents

__all__ = [
    "HYPERPARAMETERS",
    "ArrowSystem",
    "BlockTangents",
    "HierarchicalGLM",
    "HyperparameterSelection",
    "block_tangents",
    "select_candidates",
    "select_hyperparameters",
    "sld_scores",
    "sti_directions",
    "sti_scores",
    "validation_hypergradient",
]
