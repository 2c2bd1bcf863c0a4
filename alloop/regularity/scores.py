"""SLD and STI scores of many rows for a fitted model, in row batches.

* SLD — per fit: θ̇ = −H⁻¹ρ (the tangent). Per row batch: one JVP along θ̇.
* STI — per fit: θ̇ and q = H⁻¹θ̂ (one extra solve). Per row batch: one JVP along q.

Both feed the closed forms of :mod:`alloop.regularity.heuristics` (the plumbing is
:mod:`alloop.regularity.batched`, SSI is :mod:`alloop.regularity.ssi`). Without labels
(``y=None``) every score is the expectation over y ~ p(y | x; θ*), the default for pool queries;
with labels it is the value at the observed y. The definitions are the project's own
(docs/math.md §4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alloop.linalg import Inverse
from alloop.models.base import DifferentiableModel
from alloop.regularity import heuristics as hx
from alloop.regularity.batched import (
    BATCH_SIZE,
    checked_tangent,
    finite,
    score_rows,
    solve_method_for,
)
from alloop.regularity.hypergradient import (
    check_differentiable,
)


def regularity_loss_derivative(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """τ(z) = g(z)·θ̇ = dℓ(z; θ*(s))/ds for labeled rows, shape (n,).

    By the identity of docs/math.md §3 this is also d/dε [e^s C(θ*_ε)]: the change of the
    complexity term when z is up-weighted by ε. SLD(z) = τ(z)².
    """
    model = check_differentiable(model, "the loss derivative τ = g·θ̇")
    theta_dot = checked_tangent(model, tangent_method, damping) if tangent is None else tangent
    if y is None:
        raise ValueError("τ(z) = g(z)·θ̇ needs labels y; for pool rows use sld_scores(y=None)")
    lik, s2 = model.likelihood, model.sigma2
    return score_rows(
        model,
        X,
        y,
        [theta_dot],
        batch_size,
        lambda f, fd, yb: hx.directional_derivative(lik, f, fd[0], yb, s2),
    )


def sld_scores(
    model: DifferentiableModel,
    X: Any,
    y: Any = None,
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """SLD: squared loss derivative (g·θ̇)², or E_y[(g·θ̇)²] when ``y`` is None.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model.
    X : array-like, scipy sparse or tensor, shape (n, d)
    y : array-like, optional
        Observed labels (labeled variant). Without them (the default for pool queries) the
        score is the expectation over the model's predictive distribution.
    tangent_method : str
        How θ̇ is computed: "exact" (dense Cholesky), "cg", or any method
        :func:`alloop.tangent.regularity_tangent` knows ("lissa", "sgdf").
    damping : float
        Added to H in the solves, for a singular Hessian.
    tangent : torch.Tensor, optional
        θ̇ already computed for this fit.
    batch_size : int
        Rows per output-JVP batch.

    Returns
    -------
    numpy.ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(50, 2)); y = (X[:, 0] > 0).astype(int)
    >>> scores = sld_scores(LogisticGLM(s=0.0).fit(X, y), rng.normal(size=(5, 2)))
    >>> scores.shape, bool((scores >= 0).all())
    ((5,), True)
    """
    model = check_differentiable(model, "SLD")
    theta_dot = checked_tangent(model, tangent_method, damping) if tangent is None else tangent
    lik, s2 = model.likelihood, model.sigma2
    return score_rows(
        model,
        X,
        y,
        [theta_dot],
        batch_size,
        lambda f, fd, yb: hx.squared_directional_derivative(lik, f, fd[0], yb, s2),
    )


def sti_direction(
    model: DifferentiableModel,
    tangent: torch.Tensor | None = None,
    *,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """q = H⁻¹θ̂ with θ̂ = θ̇/‖θ̇‖ (one solve per fit).

    Without ``tangent``, θ̇ is computed too, by ``tangent_method``; with exact solves both
    share one factorization of H. ``solve_method`` defaults as in :func:`sti_scores`;
    ``solve_options`` (``tol``, ``max_iter``) go to :func:`alloop.linalg.solve`.
    """
    method = solve_method_for(tangent_method, solve_method)
    inverse = Inverse(model, method, damping=damping, **(solve_options or {}))
    if tangent is None:
        tangent = checked_tangent(model, tangent_method, damping, solve_options, inverse)
    return _sti_direction(model, tangent, inverse)


def _sti_direction(
    model: DifferentiableModel, tangent: torch.Tensor, inverse: Inverse
) -> torch.Tensor:
    norm = float(tangent.norm())
    if norm == 0.0:
        raise ValueError(
            f"the regularity tangent of {model!r} is zero (θ* does not depend on s, e.g. every "
            "penalized weight is 0), so STI's direction θ̇/‖θ̇‖ is undefined; use SLD or a "
            "smaller s"
        )
    q = inverse(tangent / norm)
    return finite(q.detach(), "STI's direction q = H⁻¹θ̂", model)


def sti_scores(
    model: DifferentiableModel,
    X: Any,
    y: Any = None,
    *,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """STI: squared tangent influence (θ̂·I_θ(z))² = (q·g)², or E_y[(q·g)²] when ``y`` is None.

    It measures how far up-weighting the point moves θ* along the regularity path. Parameters
    as :func:`sld_scores`; ``solve_method`` ("exact" or "cg") is the solver for q, by default
    the tangent method when it is one of those, else "cg"; ``solve_options`` (``tol``,
    ``max_iter``) go to the linear solves (e.g. a CG budget for a network).
    """
    model = check_differentiable(model, "STI")
    q = sti_direction(
        model,
        tangent,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
    )
    lik, s2 = model.likelihood, model.sigma2
    return score_rows(
        model,
        X,
        y,
        [q],
        batch_size,
        lambda f, fd, yb: hx.squared_directional_derivative(lik, f, fd[0], yb, s2),
    )
