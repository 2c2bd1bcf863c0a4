"""The Hessian H = ∇²_θ F(θ*; s) of a model's training objective: dense, or as products."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:  # annotations only: the linalg layer sits below the models
    from alloop.models.base import DifferentiableModel


@runtime_checkable
class ClosedFormHessian(Protocol):
    """A model whose objective has a closed-form Hessian (a GLM, :class:`~alloop.models.GLM`).

    ``closed_form`` is False when a subclass changed the objective (another complexity), so
    the closed form no longer holds and automatic differentiation is used instead.
    """

    @property
    def closed_form(self) -> bool: ...

    def hessian(
        self,
        theta: torch.Tensor,
        X: torch.Tensor,
        s: float | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor: ...

    def loss_hessian_vp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor: ...

    def penalty_mask(self) -> torch.Tensor: ...


def _closed_form(model: object) -> bool:
    return isinstance(model, ClosedFormHessian) and model.closed_form



def hessian(
    model: DifferentiableModel,
    theta: torch.Tensor | None = None,
    X: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    s: float | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Dense Hessian of F(θ; s) on (X, y) (default: the model's training data at θ*).

    GLMs use their closed form, summed in ``dtype`` (default: the model's precision; float32
    for a preconditioner); other models use ``torch.func.hessian``, cast to ``dtype``.
    """
    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    if _closed_form(model):
        return model.hessian(theta, X, s) if dtype is None else model.hessian(theta, X, s, dtype=dtype)
    H = torch.func.hessian(lambda t: model.objective(t, X, y, s))(theta)
    return H if dtype is None else H.to(dtype)


def hvp_fn(
    model: DifferentiableModel,
    theta: torch.Tensor | None = None,
    X: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    s: float | None = None,
    *,
    rows: int | None = None,
    seed: int = 0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ H v, never forming H.

    Autodiff models: the gradient is computed once here, keeping its graph
    (``torch.func.vjp`` of ``grad``), and each product is one reverse pass through that graph,
    the VJP of the gradient, which is H v since H is symmetric. That is about 0.6× the cost of
    a forward-over-reverse ``jvp`` of ``grad`` per product (benchmarks/scoring.py), which
    redoes the gradient every time; the building costs one gradient. GLMs use their closed form.

    ``rows`` < n uses the subsampled Hessian H_S = (n/m) Σ_{i∈S} ∇²ℓ_i + e^s ∇²C over m =
    ``rows`` training rows drawn without replacement (``seed``), an unbiased estimate of H at
    m/n of the cost of a product; ``rows`` ≥ n (or None) is the full H.
    """
    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    y = model.y_train_ if y is None else y
    weight = 1.0
    if rows is not None:
        X, y, weight = subsample_rows(X, y, rows, seed)
    lam = float(torch.tensor(model.s if s is None else s, dtype=torch.float64).exp())
    if _closed_form(model):
        # GLMs: closed form, which also works for sparse X (torch has no sparse forward-mode AD)
        mask = model.penalty_mask()
        return lambda v: weight * model.loss_hessian_vp(theta, X, v) + lam * mask * v
    if weight == 1.0:
        grad = torch.func.grad(lambda t: model.objective(t, X, y, s))
    else:
        grad = torch.func.grad(
            lambda t: weight * model.loss(t, X, y).sum() + lam * model.complexity(t)
        )
    _, linearized = torch.func.vjp(grad, theta)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return linearized(v)[0]

    return hvp


def check_rows(rows: object) -> None:
    """An error naming ``rows`` unless it is a positive integer (a count of training rows)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"hvp_rows must be a positive integer (training rows); got {rows!r}")


def subsample_rows(
    X: torch.Tensor, y: torch.Tensor, rows: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(X_S, y_S, n/m): m = ``rows`` rows of (X, y) drawn without replacement, and the weight
    that makes their summed loss an unbiased estimate of the full sum; all rows (weight 1)
    when m ≥ n.

    Examples
    --------
    >>> import torch
    >>> X, y = torch.arange(10.0).reshape(5, 2), torch.arange(5.0)
    >>> Xs, ys, w = subsample_rows(X, y, 2)
    >>> tuple(Xs.shape), w
    ((2, 2), 2.5)
    """
    check_rows(rows)
    n = X.shape[0]
    if rows >= n:
        return X, y, 1.0
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=generator)[:rows].sort().values.to(y.device)
    Xs = X.index_select(0, index.to(X.device))
    return Xs, y.index_select(0, index), n / rows


def gauss_newton_diagonal(
    model: DifferentiableModel,
    theta: torch.Tensor | None = None,
    X: torch.Tensor | None = None,
    *,
    seed: int = 0,
    chunk: int = 256,
) -> torch.Tensor:
    """A one-sample Monte Carlo estimate of diag(Σ_i J_iᵀ Λ_i J_i), the Gauss–Newton diagonal
    of the training loss, shape (p,): Σ_i g_i(ŷ_i)² with ŷ_i drawn from the model's own
    predictive law p(y | x_i; θ) (E_ŷ[g gᵀ] = JᵀΛJ for these likelihoods).

    It costs one pass of per-row gradients (``chunk`` rows at a time), about one
    Hessian-vector product, and serves as a Jacobi preconditioner for CG.
    """
    theta = model.theta_ if theta is None else theta
    X = model.X_train_ if X is None else X
    generator = torch.Generator(device=X.device).manual_seed(seed)
    total = torch.zeros_like(theta)
    for start in range(0, X.shape[0], chunk):
        block = X[start : start + chunk]
        with torch.no_grad():
            y_hat = sample_outputs(model.likelihood, model.output(theta, block), model.sigma2, generator)
        total += squared_gradient_sum(model, theta, block, y_hat)
    return total


def squared_gradient_sum(
    model: DifferentiableModel, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Σ_i g_i ∘ g_i over the rows of (X, y), g_i = ∇_θ ℓ(z_i; θ), shape (p,)."""
    return (model.per_point_grads(theta, X, y).detach() ** 2).sum(0)


def sample_outputs(
    likelihood: str, f: torch.Tensor, sigma2: float, generator: torch.Generator
) -> torch.Tensor:
    """One label per row from p(y | f): class indices, 0/1 floats or Gaussian values."""
    if likelihood == "categorical":
        return torch.multinomial(torch.softmax(f, dim=1), 1, generator=generator)[:, 0]
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.sigmoid(f[:, 0]), generator=generator)
    if likelihood == "gaussian":
        noise = torch.randn(f.shape[0], generator=generator, dtype=f.dtype, device=f.device)
        return f[:, 0] + sigma2**0.5 * noise
    raise ValueError(f"unknown likelihood {likelihood!r}")
