"""Expected gradient length (Settles, Craven & Ray, 2008).

An item is worth asking when learning its label would move the parameters most. At the fitted
θ* the gradient of the training objective vanishes, so adding a labeled item (x, y) would start
the parameters moving along its own loss gradient. Its label is unknown, so the score averages
over the model's own predictive law:

    EGL(x) = E_{y ~ p(y|x; θ*)} ‖∇_θ ℓ(x, y; θ*)‖.

Classification sums over the classes. Gaussian regression integrates over y ~ N(f, σ²).

Closed forms
------------
For a GLM, ∇_θ ℓ = x̃ ⊗ r with x̃ = [x, 1] (:meth:`GLM.design`) and r = ∂ℓ/∂f
(:func:`alloop.models.likelihoods.dnll_df`), so ‖∇_θ ℓ‖ = ‖x̃‖·‖r‖ and
EGL(x) = ‖x̃‖ · E_y ‖r‖, where E_y ‖r‖ is:

* Bernoulli, r = p − y: 2p(1 − p);
* categorical, r = p − e_y: Σ_c p_c √(‖p‖² − 2p_c + 1);
* Gaussian, r = (f − y)/σ²: E|y − f|/σ² = √(2/π)/σ.

Any other differentiable model uses its per-point gradients, in row blocks. With a Gaussian
likelihood ‖∇_θ ℓ‖ = |y − f|/σ² · ‖∇_θ f‖, so E_y‖∇_θ ℓ‖ = √(2/π) · ‖∇_θ ℓ(x, f + σ)‖: one
gradient per item instead of an integral.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from alloop.models import likelihoods as lk
    from alloop.models.base import DifferentiableModel
    from alloop.models.glm import GLM

from strategies.registry import strategy

#: about this many float64 values per block of per-point gradients (32 MiB).
_BLOCK_VALUES = 2**22


def expected_residual_norm(
    likelihood: lk.Likelihood, f: torch.Tensor, sigma2: float = 1.0
) -> torch.Tensor:
    """E_{y ~ p(y|f)} ‖∂ℓ/∂f‖ per point, shape (n,), in closed form.

    Examples
    --------
    >>> import torch
    >>> expected_residual_norm("bernoulli", torch.zeros(1, 1, dtype=torch.float64)).tolist()
    [0.5]
    """
    import torch

    from alloop.models import likelihoods as lk
    if likelihood == "gaussian":
        return torch.full((f.shape[0],), math.sqrt(2.0 / math.pi / sigma2), dtype=f.dtype, device=f.device)
    if likelihood == "bernoulli":
        p = torch.sigmoid(f[:, 0])
        return 2.0 * p * (1.0 - p)
    if likelihood == "categorical":
        p = torch.softmax(f, dim=1)
        sq = (p**2).sum(dim=1, keepdim=True) - 2.0 * p + 1.0
        return (p * sq.clamp_min(0.0).sqrt()).sum(dim=1)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def _row_sq_norms(X: Any) -> np.ndarray:
    import scipy.sparse as sp
    import torch

    from alloop.models.tensors import as_dense
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    if isinstance(X, torch.Tensor):
        X = as_dense(X).cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    return np.einsum("ij,ij->i", X, X)


def _has_closed_form(model: DifferentiableModel) -> bool:
    from alloop.models.base import DifferentiableModel
    from alloop.models.glm import GLM
    return (
        isinstance(model, GLM)
        and type(model).output is GLM.output
        and type(model).loss is DifferentiableModel.loss
    )


def _glm_egl(model: GLM, X: Any) -> np.ndarray:
    from alloop.models.tensors import to_numpy

    f = model.decision(X)
    design_sq = _row_sq_norms(X) + float(model.fit_intercept)  # ‖x̃‖², x̃ = design(x)
    residual = to_numpy(expected_residual_norm(model.likelihood, f, model.sigma2))
    return np.sqrt(design_sq) * residual


def _generic_egl(model: DifferentiableModel, X: Any) -> np.ndarray:
    import torch

    from alloop.models import likelihoods as lk
    from alloop.models.tensors import as_dense, to_numpy
    theta = model.theta_
    Xt = as_dense(model.as_features(X))
    n = Xt.shape[0]
    with torch.no_grad():
        f = model.output(theta, Xt)
    if model.likelihood == "gaussian":
        sigma = math.sqrt(model.sigma2)
        grads = model.per_point_grads(theta, Xt, f[:, 0] + sigma)
        return math.sqrt(2.0 / math.pi) * to_numpy(grads.norm(dim=1))
    proba = lk.class_probabilities(model.likelihood, f)
    label_dtype = model.dtype if model.likelihood == "bernoulli" else torch.long
    out = torch.zeros(n, dtype=model.dtype, device=model.device)
    for c in range(proba.shape[1]):
        y = torch.full((n,), c, dtype=label_dtype, device=model.device)
        out += proba[:, c] * model.per_point_grads(theta, Xt, y).norm(dim=1).detach()
    return to_numpy(out)


def expected_gradient_length(
    model: DifferentiableModel, X: Any, *, block_rows: int | None = None
) -> np.ndarray:
    """EGL(x) = E_{y ~ p(y|x)} ‖∇_θ ℓ(x, y; θ*)‖ for every row of ``X``.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted alloop model. GLMs use the closed form ‖x̃‖·E‖∂ℓ/∂f‖; other models their
        :meth:`~DifferentiableModel.per_point_grads`.
    X : array-like or scipy sparse matrix, shape (n, d)
    block_rows : int, optional
        Rows scored at once; by default about 32 MiB of gradients (or features) per block.

    Returns
    -------
    numpy.ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> X = np.array([[0.0], [1.0], [2.0]]); model = LinearGLM(sigma2=1.0).fit(X, [0.0, 1.0, 2.0])
    >>> (expected_gradient_length(model, X) / np.sqrt(2 / np.pi)).round(4).tolist()  # ‖[x, 1]‖
    [1.0, 1.4142, 2.2361]
    """
    from alloop.models.base import DifferentiableModel, NotDifferentiableError
    if not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"expected gradient length needs a differentiable alloop model; got "
            f"{type(model).__name__}. Use an alloop GLM or torch model."
        )
    theta = model._check_fitted()
    closed = _has_closed_form(model)
    if block_rows is None:
        width = X.shape[1] + 1 if closed else max(theta.numel(), X.shape[1])
        block_rows = max(1, _BLOCK_VALUES // max(1, width))
    score = _glm_egl if closed else _generic_egl
    n = X.shape[0]
    return np.concatenate(
        [score(model, X[start : start + block_rows]) for start in range(0, n, block_rows)]
    )


@strategy(
    "egl",
    "Expected gradient length: E_y‖∇θ ℓ(x, y)‖ under the model's predictive law.",
    needs=("gradients",),
)
def egl_scores(model: Any, X_pool: Any, **_: Any) -> np.ndarray:
    return expected_gradient_length(model, X_pool)
