"""Hessian-vector products and linear solves with the Hessian of a fitted model.

One implementation of this math serves the regularity tangents, the query heuristics and the
influence estimators. Everything here is a pure function over tensors and a
:class:`~alloop.models.DifferentiableModel`'s pure ``objective``.
"""

from alloop.linalg.hessian import hessian, hvp_fn
from alloop.linalg.solve import SOLVERS, Inverse, solve

__all__ = ["SOLVERS", "Inverse", "hessian", "hvp_fn", "solve"]
