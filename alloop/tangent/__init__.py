"""The regularity tangent θ̇ = dθ*/ds = −H⁻¹ρ, ρ = e^s ∇C(θ*) (docs/math.md §2)."""

from alloop.tangent.solvers import TANGENT_METHODS, regularity_rhs, regularity_tangent

__all__ = ["TANGENT_METHODS", "regularity_rhs", "regularity_tangent"]
