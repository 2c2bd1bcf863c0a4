"""The softmax GLM's closed-form Hessian and SSI's closed-form third-order term, against autograd.

The loss Hessian is assembled from the distinct feature and class pairs by one matrix product,
with one class's blocks from the others' sums (alloop/models/softmax_hessian.py). References
here share no code with it: ``torch.func.hessian`` of the training objective, a plain sum of
Kronecker products, and third derivatives by nested autograd. float64, to 1e-12 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import alloop.models.softmax_hessian as sh
from alloop.linalg import hessian
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.regularity.ssi import _third_order_gradient


def _fitted(k=4, n=120, d=5, s=-0.5, seed=1, **kw):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, k)) + np.linspace(0.0, 2.0, k)  # unequal class masses
    y = logits.argmax(1) if k > 2 else (logits[:, 1] > logits[:, 0]).astype(int)
    return (SoftmaxGLM if k > 2 or kw.pop("softmax", True) else LogisticGLM)(s=s, **kw).fit(X, y)


def _relerr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _autograd_hessian(model):
    theta = model.theta_.detach()
    return torch.func.hessian(lambda t: model.objective(t, model.X_train_, model.y_train_))(theta)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_softmax_hessian_equals_autograd(k, fit_intercept):
    model = _fitted(k=k, fit_intercept=fit_intercept)
    assert _relerr(hessian(model), _autograd_hessian(model)) <= 1e-12


@pytest.mark.parametrize("use_numpy", [True, False])
@pytest.mark.parametrize("block", [sh.BLOCK_ENTRIES, 600])  # 600: many row and feature blocks
def test_assembly_paths_and_blocks_equal_a_kronecker_sum(monkeypatch, use_numpy, block):
    rng = np.random.default_rng(0)
    n, d1, k = 700, 9, 6
    X = torch.from_numpy(rng.normal(size=(n, d1)))
    # the most probable class in the middle, so the left-out class is neither first nor last
    P = torch.softmax(torch.from_numpy(rng.normal(size=(n, k)) + 1.5 * (np.arange(k) == 3)), 1)
    w = torch.from_numpy(rng.normal(size=n))  # weights of either sign
    Lam = torch.diag_embed(P) - P.unsqueeze(2) * P.unsqueeze(1)
    brute = sum(wi * torch.kron(torch.outer(x, x), L) for wi, x, L in zip(w, X, Lam, strict=True))
    pairs = sh._pair_products
    monkeypatch.setattr(sh, "BLOCK_ENTRIES", block)
    monkeypatch.setattr(sh, "_pair_products", lambda Xd, om: pairs(Xd, om, use_numpy))
    H = sh.softmax_loss_hessian(X, P, w)
    assert _relerr(H, brute) <= 1e-12
    assert torch.equal(H, H.T)


def test_float32_assembly_is_float32_and_close():
    model = _fitted(k=4)
    Xd = model.design(model.X_train_)
    P = torch.softmax(model.output(model.theta_, model.X_train_), 1)
    H64 = sh.softmax_loss_hessian(Xd, P)
    H32 = sh.softmax_loss_hessian(Xd.float(), P.float())
    assert H32.dtype == torch.float32
    assert _relerr(H32.double(), H64) <= 1e-5


@pytest.mark.parametrize("k", [2, 4])
def test_third_order_gradient_equals_nested_autograd(k):
    """∇_θ(uᵀH(θ)θ̇) in closed form against the gradient of θ ↦ uᵀ ∇²F(θ) v by autograd."""
    model = _fitted(k=k, softmax=False) if k == 2 else _fitted(k=k)
    g = torch.Generator().manual_seed(3)
    u, v = (torch.randn(model.theta_.numel(), dtype=torch.float64, generator=g) for _ in range(2))
    X, y = model.X_train_, model.y_train_

    def form(t):
        return u @ torch.func.hessian(lambda s: model.objective(s, X, y))(t) @ v

    brute = torch.func.grad(form)(model.theta_.detach())
    assert _relerr(_third_order_gradient(model, u, v), brute) <= 1e-12
