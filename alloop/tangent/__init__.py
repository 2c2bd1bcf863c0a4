"""The regularity tangent θ̇ = dθ*/ds = −H⁻¹ρ, ρ = e^s ∇C(θ*) (docs/math.md §2).

The minibatch run that carries θ̇ along training is :mod:`alloop.optim` (models train with it).
"""

from alloop.tangent.lissa import largest_eigenvalue, lissa_solve, lissa_tangent
from alloop.tangent.rhs import regularity_rhs
from alloop.tangent.sgdf import sgdf_train
from alloop.tangent.solvers import TANGENT_METHODS, regularity_tangent

__all__ = [
    "TANGENT_METHODS",
    "largest_eigenvalue",
    "lissa_solve",
    "lissa_tangent",
    "regularity_rhs",
    "regularity_tangent",
    "sgdf_train",
]
