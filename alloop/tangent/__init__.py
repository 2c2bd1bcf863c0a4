"""The regularity tangent θ̇ = dθ*/ds = −H⁻¹ρ, ρ = e^s ∇C(θ*) (docs/math.md §2)."""

from alloop.optim.sgdf import (
    OPTIMIZERS,
    SCHEDULES,
    SGDFResult,
    batch_gradient,
    learning_rates,
    minibatches,
    sgdf_run,
)
from alloop.tangent.lissa import largest_eigenvalue, lissa_solve, lissa_tangent
from alloop.tangent.rhs import regularity_rhs
from alloop.tangent.sgdf import sgdf_train
from alloop.tangent.solvers import TANGENT_METHODS, regularity_tangent

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGDFResult",
    "TANGENT_METHODS",
    "batch_gradient",
    "largest_eigenvalue",
    "learning_rates",
    "lissa_solve",
    "lissa_tangent",
    "minibatches",
    "regularity_rhs",
    "regularity_tangent",
    "sgdf_run",
    "sgdf_train",
]
