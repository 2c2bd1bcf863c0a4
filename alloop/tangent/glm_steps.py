"""A GLM's minibatch gradient and its tangent in closed form, for SGDF without autograd.

For a GLM f = X̃Θ (Θ the (d + 1, K) parameter matrix, last row the intercept) the mean batch
loss gradient and its derivative along θ̇ are (docs/math.md §1, §2)

    ḡ = X̃_Bᵀ r / |B|,          r_i = ∂ℓ/∂f_i = μ(f_i) − y_i  (the likelihood's residual),
    ḡ̇ = X̃_Bᵀ (Λ_i ḟ_i) / |B|,   ḟ = X̃_B Θ̇,  Λ_i = ∂²ℓ/∂f_i²  (its variance function),

with Λ = 1/σ² (Gaussian), μ(1 − μ) (Bernoulli) and diag(p) − ppᵀ (categorical). Θ and Θ̇ are
stacked side by side so f and ḟ take one matrix product, and r and Λḟ one more: two products
of a batch per step against one forward and one backward pass, each several ops on dual
numbers, on the autograd path. The regularizer's part is added by :func:`alloop.optim.sgdf_run`.
"""

from __future__ import annotations

import torch

from alloop.models import likelihoods as lk
from alloop.models.tensors import as_dense
from alloop.optim.sgdf import LossGradient


def output_hessian_vp(
    likelihood: lk.Likelihood, f: torch.Tensor, f_dot: torch.Tensor, sigma2: float = 1.0
) -> torch.Tensor:
    """Λ_i ḟ_i per point, shape (n, K): the output Hessian of ℓ times ḟ, without the (n, K, K)
    tensor of :func:`alloop.models.likelihoods.output_hessian`.

    Examples
    --------
    >>> f = torch.zeros(1, 1, dtype=torch.float64)
    >>> output_hessian_vp("bernoulli", f, torch.ones(1, 1, dtype=torch.float64)).item()
    0.25
    """
    if likelihood == "gaussian":
        return f_dot / sigma2
    if likelihood == "bernoulli":
        p = torch.sigmoid(f)
        return p * (1 - p) * f_dot
    if likelihood == "categorical":
        p = torch.softmax(f, dim=1)
        pf = p * f_dot
        return pf - p * pf.sum(dim=1, keepdim=True)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def glm_loss_gradient(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    likelihood: lk.Likelihood,
    n_outputs: int,
    fit_intercept: bool,
    sigma2: float = 1.0,
) -> LossGradient:
    """The closed-form :data:`~alloop.optim.sgdf.LossGradient` of a GLM on (X, y).

    Parameters
    ----------
    X : torch.Tensor
        Features, shape (n, d), dense or sparse COO (a batch's rows are densified).
    y : torch.Tensor
        Encoded targets, shape (n,), as the likelihood expects them.
    likelihood : {"gaussian", "bernoulli", "categorical"}
    n_outputs : int
        K, the columns of Θ (1 for Gaussian and Bernoulli).
    fit_intercept : bool
        Whether θ ends with an intercept row.
    sigma2 : float
        Gaussian residual variance.

    Examples
    --------
    One Gaussian point x = 2, y = 1, no intercept: ḡ = x(xθ − y), ḡ̇ = x²θ̇.

    >>> X = torch.tensor([[2.0]], dtype=torch.float64); y = torch.tensor([1.0], dtype=torch.float64)
    >>> grad = glm_loss_gradient(X, y, likelihood="gaussian", n_outputs=1, fit_intercept=False)
    >>> g, g_dot = grad(torch.tensor([1.0], dtype=torch.float64), torch.arange(1),
    ...                 torch.tensor([0.5], dtype=torch.float64))
    >>> g.item(), g_dot.item()
    (2.0, 2.0)
    """
    d, k = X.shape[1], n_outputs
    rows = d + int(fit_intercept)
    # dense features get their design X̃ = [X, 1] once, so a step is two plain products
    design = None if X.is_sparse else _design(X, fit_intercept)

    def batch_design(index: torch.Tensor) -> torch.Tensor:
        if design is not None:
            return design.index_select(0, index)
        return _design(as_dense(X.index_select(0, index)), fit_intercept)

    def gradient(
        theta: torch.Tensor, index: torch.Tensor, theta_dot: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        Xb, yb = batch_design(index), y.index_select(0, index)
        M = theta.view(rows, k)
        if theta_dot is None:
            R = lk.dnll_df(likelihood, Xb @ M, yb, sigma2)
            # (Rᵀ X̃)ᵀ is θ's (rows, K) layout; for K = 1 the flattening is a view
            return (R.T @ Xb).T.reshape(-1).div_(len(index)), None
        both = Xb @ torch.cat([M, theta_dot.view(rows, k)], dim=1)
        r, r_dot = _residual_and_curvature(likelihood, both[:, :k], both[:, k:], yb, sigma2)
        G = (torch.cat([r, r_dot], dim=1).T @ Xb).div_(len(index))
        return G[:k].T.reshape(-1), G[k:].T.reshape(-1)

    return gradient


def _design(X: torch.Tensor, fit_intercept: bool) -> torch.Tensor:
    if not fit_intercept:
        return X
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)


def _residual_and_curvature(
    likelihood: lk.Likelihood, f: torch.Tensor, f_dot: torch.Tensor, y: torch.Tensor, sigma2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂ℓ/∂f, Λḟ) per point; the Bernoulli mean is computed once for both."""
    if likelihood == "bernoulli":
        p = torch.sigmoid(f)
        return p - y.unsqueeze(1), (p - p * p) * f_dot
    return lk.dnll_df(likelihood, f, y, sigma2), output_hessian_vp(likelihood, f, f_dot, sigma2)
