"""A two-layer tanh network d → h → 1 as a plain torch function of a flat θ, and its ridge penalty.

Written as a function (not an ``nn.Module``) so that SGD-IE / ACC-SGD-IE and counterfactual SGD
take the generic ``torch.func`` path (vmapped Hessian-vector products) that any torch loss takes.
Shared by the Paper-001 reproduction and ``benchmarks/influence.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

DTYPE = torch.float64


class TwoLayer:
    """θ = [W1 (d×h), b1 (h), w2 (h), b2 (1)]; logistic loss on f(x) = tanh(x W1 + b1)·w2 + b2.

    Examples
    --------
    >>> net = TwoLayer(3, 4)
    >>> theta = net.init(0)
    >>> net.loss(theta, torch.zeros(2, 3, dtype=DTYPE), torch.ones(2, dtype=DTYPE)).shape
    torch.Size([2])
    """

    def __init__(self, d: int, hidden: int) -> None:
        self.d, self.hidden = d, hidden
        self.shapes = [(d, hidden), (hidden,), (hidden,), (1,)]
        self.sizes = [math.prod(s) for s in self.shapes]
        #: 1 for weights, 0 for biases: which parameters the ridge penalty covers.
        self.mask = torch.cat([torch.full((k,), float(i % 2 == 0), dtype=DTYPE) for i, k in enumerate(self.sizes)])

    @property
    def n_params(self) -> int:
        return sum(self.sizes)

    def unpack(self, theta: torch.Tensor) -> list[torch.Tensor]:
        return [p.reshape(s) for p, s in zip(torch.split(theta, self.sizes), self.shapes)]

    def logits(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        W1, b1, w2, b2 = self.unpack(theta)
        return torch.tanh(X @ W1 + b1) @ w2 + b2

    def loss(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-point logistic loss, labels y ∈ {0, 1} as float64."""
        f = self.logits(theta, X)
        return torch.nn.functional.softplus(f) - y * f

    def init(self, seed: int) -> torch.Tensor:
        """Seeded 1/√fan-in normal weights, zero biases."""
        g = torch.Generator().manual_seed(seed)
        W1 = torch.randn(self.d, self.hidden, generator=g, dtype=DTYPE) / math.sqrt(self.d)
        w2 = torch.randn(self.hidden, generator=g, dtype=DTYPE) / math.sqrt(self.hidden)
        zeros = lambda k: torch.zeros(k, dtype=DTYPE)  # noqa: E731
        return torch.cat([W1.reshape(-1), zeros(self.hidden), w2, zeros(1)])


class Ridge:
    """R(θ) = c·½‖mask ⊙ θ‖², with the closed-form ``gradient`` and ``hvps`` the SGD loops use."""

    def __init__(self, mask: torch.Tensor, c: float) -> None:
        self.diag = c * mask

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.diag * theta**2).sum()

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        return self.diag * theta

    def hvps(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return V * self.diag


def two_layer(d: int, hidden: int, c: float) -> tuple[Callable, Ridge, TwoLayer]:
    """(loss, penalty, net) for a d → hidden → 1 network with ridge strength c."""
    net = TwoLayer(d, hidden)
    return net.loss, Ridge(net.mask, c), net
