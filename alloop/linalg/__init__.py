"""Hessian-vector products and linear solves with the Hessian of a fitted model.

One implementation of this math serves the regularity tangents, the query heuristics and the
influence estimators. Everything here is a pure function over tensors and a
:class:`~alloop.models.DifferentiableModel`'s pure ``objective``.
"""

from alloop.linalg.hessian import gauss_newton_diagonal, hessian, hvp_fn
from alloop.linalg.solve import PRECONDITIONERS, SOLVERS, Inverse, conjugate_gradient, solve

__all__ = [
    "PRECONDITIONERS",
    "SOLVERS",
    "Inverse",
    "conjugate_gradient",
    "gauss_newton_diagonal",
    "hessian",
    "hvp_fn",
    "solve",
]
