"""Per-point likelihoods of the model output f(x; θ): loss, its derivatives, predictive law.

Pure functions over tensors. ``f`` has shape (n, K): K = 1 for Gaussian regression and for
Bernoulli (one logit), K classes for the categorical likelihood. ``y`` holds float targets
(Gaussian), 0/1 floats (Bernoulli) or integer class indices (categorical).
"""

from __future__ import annotations

from typing import Literal

import torch

Likelihood = Literal["gaussian", "bernoulli", "categorical"]
LIKELIHOODS: tuple[str, ...] = ("gaussian", "bernoulli", "categorical")


def nll(likelihood: Likelihood, f: torch.Tensor, y: torch.Tensor, sigma2: float = 1.0) -> torch.Tensor:
    """Negative log-likelihood ℓ = −log p(y | f) per point, shape (n,), up to constants."""
    if likelihood == "gaussian":
        return (y - f[:, 0]) ** 2 / (2.0 * sigma2)
    if likelihood == "bernoulli":
        logit = f[:, 0]
        return torch.nn.functional.softplus(logit) - y * logit
    if likelihood == "categorical":
        return torch.logsumexp(f, dim=1) - f.gather(1, y.long().view(-1, 1))[:, 0]
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def dnll_df(likelihood: Likelihood, f: torch.Tensor, y: torch.Tensor, sigma2: float = 1.0) -> torch.Tensor:
    """∂ℓ/∂f per point, shape (n, K)."""
    if likelihood == "gaussian":
        return -(y - f[:, 0]).unsqueeze(1) / sigma2
    if likelihood == "bernoulli":
        return (torch.sigmoid(f[:, 0]) - y).unsqueeze(1)
    if likelihood == "categorical":
        p = torch.softmax(f, dim=1)
        return p - torch.nn.functional.one_hot(y.long(), f.shape[1]).to(f.dtype)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def output_hessian(likelihood: Likelihood, f: torch.Tensor, sigma2: float = 1.0) -> torch.Tensor:
    """Λ = ∂²ℓ/∂f² per point, shape (n, K, K). It does not depend on y for these likelihoods."""
    n, k = f.shape
    if likelihood == "gaussian":
        return torch.full((n, 1, 1), 1.0 / sigma2, dtype=f.dtype, device=f.device)
    if likelihood == "bernoulli":
        p = torch.sigmoid(f[:, 0])
        return (p * (1 - p)).view(n, 1, 1)
    if likelihood == "categorical":
        p = torch.softmax(f, dim=1)
        return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def class_probabilities(likelihood: Likelihood, f: torch.Tensor) -> torch.Tensor:
    """Predictive class probabilities, shape (n, C) with C = 2 for Bernoulli."""
    if likelihood == "bernoulli":
        p = torch.sigmoid(f[:, 0])
        return torch.stack([1 - p, p], dim=1)
    if likelihood == "categorical":
        return torch.softmax(f, dim=1)
    raise ValueError(f"the {likelihood!r} likelihood has no class probabilities")
