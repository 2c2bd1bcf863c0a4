"""Solvers for the regularity tangent θ̇ = dθ*/ds = −H⁻¹ρ of a fitted model (docs/math.md §2).

* ``"exact"`` — dense Cholesky of H (GLMs up to a few thousand parameters);
* ``"cg"`` — conjugate gradients with Hessian-vector products (:func:`alloop.linalg.hvp_fn`);
* ``"lissa"`` — stochastic Neumann iteration over minibatches at θ* (:mod:`.lissa`);
* ``"sgdf"`` — the tangent carried along minibatch SGD during training (:mod:`.sgdf`).
"""

from __future__ import annotations

from typing import Any

import torch

from alloop.linalg.solve import solve
from alloop.models.base import DifferentiableModel, NotDifferentiableError
from alloop.tangent.lissa import lissa_tangent
from alloop.tangent.rhs import regularity_rhs

TANGENT_METHODS = ("exact", "cg", "lissa", "sgdf")


def regularity_tangent(model: Any, method: str = "exact", **options: Any) -> torch.Tensor:
    """θ̇ = dθ*/ds = −H⁻¹ρ at the model's fitted θ*.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model.
    method : {"exact", "cg", "lissa", "sgdf"}
        Dense Cholesky; conjugate gradients with Hessian-vector products; LiSSA over
        minibatches; or the tangent stored by SGDF training (``TorchModel(...,
        track_tangent=True)``), which is dθ_T/ds of the training run itself.
    **options
        ``exact`` / ``cg``: passed to :func:`alloop.linalg.solve` (``damping``, ``tol``,
        ``max_iter``). ``lissa``: passed to :func:`alloop.tangent.lissa.lissa_tangent`
        (``step``, ``damping``, ``epochs``, ``batch_size``, ``seed``, ``tail``). ``sgdf``: none.

    Raises
    ------
    ValueError
        Unknown method; a singular Hessian without damping; no stored SGDF tangent.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> X = np.array([[1.0], [2.0], [3.0]]); y = 2 * X[:, 0]
    >>> m = LinearGLM(s=0.0, fit_intercept=False, sigma2=1.0).fit(X, y)  # θ* = 28/15
    >>> round(regularity_tangent(m, "exact").item(), 6)          # dθ*/ds = −28/15²
    -0.124444
    """
    if not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"the regularity tangent needs a differentiable model (alloop GLM, MLP, or a "
            f"scikit-learn LogisticRegression / Ridge); got {type(model).__name__}"
        )
    if model.theta_ is None:
        raise RuntimeError("fit the model before computing its tangent")
    if method not in TANGENT_METHODS:
        raise ValueError(f"unknown tangent method {method!r}; expected one of {TANGENT_METHODS}")
    if method == "sgdf":
        if options:
            raise TypeError(f"method 'sgdf' takes no options; got {sorted(options)}")
        tangent = _stored_sgdf_tangent(model)
    elif method == "lissa":
        tangent = lissa_tangent(model, **options)
    else:
        tangent = -solve(model, regularity_rhs(model), method, **options)
    if not bool(torch.isfinite(tangent).all()):
        raise ValueError(
            f"the {method!r} tangent of {model!r} is not finite: the Hessian is singular or "
            f"ill-conditioned at λ = e^s = {model.lam:.3g}; use a larger s or pass damping > 0"
        )
    return tangent


def _stored_sgdf_tangent(model: DifferentiableModel) -> torch.Tensor:
    tangent = getattr(model, "tangent_", None)
    if tangent is None:
        raise ValueError(
            f"{type(model).__name__} carries no SGDF tangent: method 'sgdf' returns the tangent "
            "tracked during minibatch training. Fit a TorchModel / MLP with optimizer 'sgd' or "
            "'adam' and track_tangent=True (constructor or fit(X, y, track_tangent=True)); for "
            "other models train with alloop.tangent.sgdf.sgdf_train. Otherwise use 'cg' or 'exact'."
        )
    tangent_s = getattr(model, "tangent_s_", model.s)
    if tangent_s != model.s:
        raise ValueError(
            f"the stored SGDF tangent was tracked at s = {tangent_s:.6g} but the model now has "
            f"s = {model.s:.6g}; refit the model"
        )
    return tangent
