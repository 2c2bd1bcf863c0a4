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
  (:mod:`.queries`);
* :func:`ssi_scores`, :func:`s_influence_scores`, :func:`ssi_directions` — multi-user SSI, the
  influence of a (user, item) candidate on the selected (s_0, s_1) (:mod:`.ssi`);
* :class:`HierarchicalHeads` — per-user heads over a shared torch trunk, trained by SGD/Adam,
  tangents by SGDF (:mod:`.torch_heads`);
* :class:`PairPool`, :func:`pair_rows`, :func:`split_pairs`, :class:`UserQuota` — (user, item)
  pairs as the candidate space of the ordinary :class:`alloop.ActiveLoop` (:mod:`.pool`);
* :class:`HierarchicalRegularity`, :class:`UserReport` — the loop's (s_0, s_1) search and
  per-user report (:mod:`.loop_hooks`). Annotators as users: :class:`oracles.routing.UserRoutedOracle`;
  a multi-user config as a loop: :mod:`alloop.experiment.multiuser`.

Multi-user active learning is the ordinary loop: ``ActiveLoop(PairPool(...),
HierarchicalGLM(n_users=U), "sld", oracle, batch_rule=UserQuota(1),
regularity=HierarchicalRegularity(), round_report=UserReport(...))``; ``sld``, ``sti`` and
``ssi`` score with the model's block tangents (:mod:`.scoring`).
"""

from alloop.multiuser.loop_hooks import HierarchicalRegularity, UserReport
from alloop.multiuser.model import HierarchicalGLM
from alloop.multiuser.pool import PairPool, UserQuota, pair_rows, split_pairs
from alloop.multiuser.queries import select_candidates, sld_scores, sti_directions, sti_scores
from alloop.multiuser.regularity import (
    HyperparameterSelection,
    select_hyperparameters,
    validation_hypergradient,
)
from alloop.multiuser.schur import ArrowSystem
from alloop.multiuser.ssi import (
    MultiUserSSIDirections,
    s_influence_scores,
    ssi_directions,
    ssi_scores,
)
from alloop.multiuser.tangent import HYPERPARAMETERS, BlockTangents, block_tangents
from alloop.multiuser.torch_heads import HierarchicalHeads

__all__ = [
    "HYPERPARAMETERS",
    "ArrowSystem",
    "BlockTangents",
    "HierarchicalGLM",
    "HierarchicalHeads",
    "HierarchicalRegularity",
    "HyperparameterSelection",
    "MultiUserSSIDirections",
    "PairPool",
    "UserQuota",
    "UserReport",
    "block_tangents",
    "s_influence_scores",
    "select_candidates",
    "select_hyperparameters",
    "sld_scores",
    "ssi_directions",
    "pair_rows",
    "split_pairs",
    "ssi_scores",
    "sti_directions",
    "sti_scores",
    "validation_hypergradient",
]
