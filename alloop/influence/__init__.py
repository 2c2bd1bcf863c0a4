"""Influence-based subset scores and estimators (``docs/math.md`` §6–8).

* :mod:`~alloop.influence.ip_adding` — which candidates improve the validation predictions if
  added (IP-adding, sign-aligned contribution score); :mod:`~alloop.influence.subset` — Method 1
  / top-k selection by those scores.
* :mod:`~alloop.influence.sgd_trajectory` — minibatch SGD that records its batch order.
* :mod:`~alloop.influence.sgd_ie` — SGD-IE and ACC-SGD-IE leave-one-out estimates along it.
* :mod:`~alloop.influence.loo` — real counterfactual SGD (ground truth) and agreement metrics.
* :mod:`~alloop.influence.fvm` — influence at (flat) validation minima;
  :mod:`~alloop.influence.baselines` — the noisy-label baselines it is compared with.

All are pure functions over tensors and fitted models.
"""

from alloop.influence.baselines import (
    detection_auc,
    self_influence,
    tracin_self_influence,
    training_loss,
)
from alloop.influence.fvm import (
    ValidationInfluence,
    ValidationMinimum,
    relabel_proposals,
    sam_step,
    validation_influence,
    validation_minimum,
    validation_minimum_influence,
)
from alloop.influence.ip_adding import (
    AlignedPredictions,
    aligned_predictions,
    expected_scores,
    ip_adding_scores,
    prediction_changes,
)
from alloop.influence.loo import (
    counterfactual_sgd,
    influence_metrics,
    jaccard_top,
    kendall_tau,
    loo_deviation,
    loo_loss_change,
    rmse,
)
from alloop.influence.sgd_ie import loss_change, sgd_ie_backward, sgd_influence
from alloop.influence.sgd_trajectory import (
    ModelPenalty,
    SGDTrajectory,
    batch_order,
    model_penalty,
    replay,
    sgd_train,
    validation_gradient,
    validation_hessian,
    validation_loss,
)
from alloop.influence.subset import SubsetSelection, select_subset, subset_mask

__all__ = [
    "AlignedPredictions",
    "ModelPenalty",
    "SGDTrajectory",
    "SubsetSelection",
    "ValidationInfluence",
    "ValidationMinimum",
    "aligned_predictions",
    "batch_order",
    "counterfactual_sgd",
    "detection_auc",
    "expected_scores",
    "influence_metrics",
    "ip_adding_scores",
    "jaccard_top",
    "kendall_tau",
    "loo_deviation",
    "loo_loss_change",
    "loss_change",
    "model_penalty",
    "prediction_changes",
    "relabel_proposals",
    "replay",
    "rmse",
    "sam_step",
    "select_subset",
    "self_influence",
    "sgd_ie_backward",
    "sgd_influence",
    "sgd_train",
    "subset_mask",
    "tracin_self_influence",
    "training_loss",
    "validation_gradient",
    "validation_hessian",
    "validation_influence",
    "validation_loss",
    "validation_minimum",
    "validation_minimum_influence",
]
