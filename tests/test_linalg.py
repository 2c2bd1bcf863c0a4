"""Hessian products and solves against dense autograd Hessians."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits

from alloop.linalg import hessian, hvp_fn, solve
from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.models import LinearGLM, LogisticGLM, SoftmaxGLM


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:150] / 16.0, y[:150]


@pytest.mark.parametrize("make", [SoftmaxGLM, LogisticGLM, LinearGLM])
@pytest.mark.parametrize("sparse", [False, True])
def test_hessian_products_and_solves_match_autograd(digits, make, sparse):
    X, y = digits
    y = {SoftmaxGLM: y, LogisticGLM: (y > 4).astype(int), LinearGLM: y.astype(float)}[make]
    model = make(s=0.5).fit(sp.csr_matrix(X) if sparse else X, y)
    dense = make(s=0.5).fit(X, y)
    brute = torch.func.hessian(lambda t: dense.objective(t, dense.X_train_, dense.y_train_))(dense.theta_)
    v = torch.randn(model.theta_.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hessian(model), brute, atol=1e-10)
    assert torch.allclose(hvp_fn(model)(v), brute @ v, atol=1e-10)
    # solve on the complement of the softmax intercept gauge direction
    Q = model.null_space()
    b = v if Q is None else v - Q @ (Q.T @ v)
    # the pseudo-inverse on the complement of the flat direction, by a plain dense solve
    reference = torch.linalg.solve(brute if Q is None else brute + Q @ Q.T, b)
    for method in ("exact", "cg"):
        x = solve(model, v, method)
        assert torch.allclose(x, reference, rtol=1e-6, atol=1e-8), method
    # several right-hand sides at once (batched CG): each column is its own dense solve
    V = torch.stack([v, 2.0 * v.flip(0), torch.ones_like(v)], dim=1)
    Vb = V if Q is None else V - Q @ (Q.T @ V)
    ref_many = torch.linalg.solve(brute if Q is None else brute + Q @ Q.T, Vb)
    for method in ("exact", "cg"):
        assert torch.allclose(solve(model, V, method), ref_many, rtol=1e-6, atol=1e-8), method


def test_jitter_rescues_a_numerically_singular_matrix_and_warns():
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0 + 1e-18]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="numerically singular; solved with damping"):
        L = cholesky_with_jitter(A, "A")
    assert torch.isfinite(L).all()
    assert torch.allclose(L @ L.T, A, atol=1e-6)


def test_indefinite_matrix_is_refused_with_the_fix():
    A = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="use a larger s"):
        cholesky_with_jitter(A, "A")


def test_unknown_solver_is_named(digits):
    X, y = digits
    model = SoftmaxGLM().fit(X, y)
    with pytest.raises(ValueError, match="unknown solver 'qr'"):
        solve(model, model.theta_, "qr")
    assert np.isfinite(solve(model, model.theta_).numpy()).all()
