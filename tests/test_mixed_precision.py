"""Mixed-precision exact solves (alloop/linalg/refine.py, ``Inverse(mixed_precision=...)``).

The float32-preconditioned float64 refinement is checked against references that share no code
with it: a float64 dense Cholesky solve of ``torch.func.hessian`` of the training objective
(plus the gauge term QQᵀ), and a plain sum of Kronecker products for the matrix-free product.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import alloop.linalg.refine as refine
from alloop.linalg import Inverse
from alloop.models import SoftmaxGLM
from alloop.models.softmax_hessian import softmax_hessian_matmat
from alloop.tangent.rhs import regularity_rhs


def _fitted(k=10, n=400, d=8, s=0.0, seed=0, **kw):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, k)) + np.linspace(0.0, 2.0, k)
    y = rng.choice(k, size=n) if kw.pop("noisy", True) else logits.argmax(1)
    y[: 2 * k] = np.arange(2 * k) % k  # every class labeled
    y = np.where(rng.random(n) < 0.5, logits.argmax(1), y)
    return SoftmaxGLM(s=s, **kw).fit(X, y)


def _dense_solve(model, B, damping=0.0):
    """(H + δI + QQᵀ)⁻¹B by a float64 Cholesky factor of autograd's Hessian, and its κ."""
    theta, X, y = model.theta_, model.X_train_, model.y_train_
    H = torch.func.hessian(lambda t: model.objective(t, X, y))(theta)
    H = H + damping * torch.eye(H.shape[0], dtype=H.dtype)
    Q = model.null_space()
    if Q is not None:
        H = H + Q @ Q.T
        B = B - Q @ (Q.T @ B)
    eig = torch.linalg.eigvalsh(H)
    L = torch.linalg.cholesky(H)
    single = B.dim() == 1
    x = torch.cholesky_solve(B.unsqueeze(1) if single else B, L)
    return (x[:, 0] if single else x), float(eig[-1] / eig[0])


def _relerr(a, b):
    return float((a - b).norm() / b.norm())


def test_the_matrix_free_product_equals_a_kronecker_sum():
    rng = np.random.default_rng(3)
    n, d1, k = 60, 5, 4
    X = torch.from_numpy(rng.normal(size=(n, d1)))
    P = torch.softmax(torch.from_numpy(rng.normal(size=(n, k))), 1)
    Lam = torch.diag_embed(P) - P.unsqueeze(2) * P.unsqueeze(1)
    brute = sum(torch.kron(torch.outer(x, x), L) for x, L in zip(X, Lam, strict=True))
    V = torch.from_numpy(rng.normal(size=(d1 * k, 3)))
    assert _relerr(softmax_hessian_matmat(X, P, V), brute @ V) <= 1e-13
    assert _relerr(softmax_hessian_matmat(X, P, V[:, 1]), brute @ V[:, 1]) <= 1e-13


@pytest.mark.parametrize("k", [2, 10])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_glm_hessian_matmat_and_float32_assembly_equal_autograd(k, fit_intercept):
    model = _fitted(k=k, s=-1.0, fit_intercept=fit_intercept)
    theta, X, y = model.theta_, model.X_train_, model.y_train_
    H = torch.func.hessian(lambda t: model.objective(t, X, y))(theta)
    V = torch.from_numpy(np.random.default_rng(0).normal(size=(H.shape[0], 2)))
    assert _relerr(model.hessian_matmat(theta, X)(V), H @ V) <= 1e-12
    H32 = model.hessian(theta, X, dtype=torch.float32)
    assert H32.dtype == torch.float32
    assert _relerr(H32.double(), H) <= 1e-6
    H32_too, product = model.hessian_and_matmat(theta, X, torch.float32)
    assert torch.equal(H32_too, H32) and _relerr(product(V), H @ V) <= 1e-12


@pytest.mark.parametrize("k", [2, 10])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("s", [0.0, -4.0, -8.0])
def test_refined_solves_equal_a_float64_cholesky_solve(k, fit_intercept, s):
    model = _fitted(k=k, s=s, fit_intercept=fit_intercept)
    rho = regularity_rhs(model)
    B = torch.stack([rho, torch.from_numpy(np.random.default_rng(1).normal(size=rho.shape))], 1)
    reference, kappa = _dense_solve(model, B)
    inverse = Inverse(model)
    assert inverse._mixed()  # the default for a float64 CPU softmax
    x = inverse(B)
    assert inverse.fallback is None, (kappa, inverse.fallback)
    # both solves are accurate to ≈ κ·1e-16 (backward error ≈ 1e-16); 1e-12 where κ allows
    bound = max(1e-12, 1e-15 * kappa)
    assert _relerr(x, reference) <= bound, (kappa, _relerr(x, reference))
    assert _relerr(inverse(rho), reference[:, 0]) <= bound  # one vector, the same factor
    assert _relerr(inverse(B[:, 1]), reference[:, 1]) <= bound


def test_damping_is_in_the_refined_operator():
    model = _fitted(k=5, s=-2.0)
    b = regularity_rhs(model)
    reference, _ = _dense_solve(model, b, damping=0.3)
    inverse = Inverse(model, damping=0.3)
    assert _relerr(inverse(b), reference) <= 1e-12 and inverse.fallback is None


def test_scores_are_those_of_the_float64_factor():
    from alloop.regularity.scores import sld_scores, sti_scores

    model = _fitted(k=10, s=-1.0)
    X = np.random.default_rng(5).normal(size=(50, 8))
    dense_tangent = -Inverse(model, mixed_precision=False)(regularity_rhs(model))
    pairs = [
        (sld_scores(model, X), sld_scores(model, X, tangent=dense_tangent)),
        (sti_scores(model, X), sti_scores(model, X, solve_options={"mixed_precision": False})),
    ]
    for mixed, dense in pairs:
        assert np.max(np.abs(mixed - dense)) <= 1e-10 * np.max(np.abs(dense))


def test_a_near_singular_hessian_falls_back_to_the_float64_factor():
    # 20 rows, 10 features, 3 classes, separable, λ = e^-28: κ(H) ≈ 1e12, beyond float32
    model = _fitted(k=3, n=20, d=10, s=-28.0, noisy=False)
    b = regularity_rhs(model)
    inverse = Inverse(model)
    with pytest.warns(RuntimeWarning) if _needs_jitter(model) else _nothing():
        x = inverse(b)
    assert inverse.fallback is not None
    with pytest.warns(RuntimeWarning) if _needs_jitter(model) else _nothing():
        dense = Inverse(model, mixed_precision=False)(b)
    assert torch.equal(x, dense)  # the fallback is the float64 path itself
    assert not inverse._mixed()  # and later solves go straight to it


def test_a_stalled_refinement_falls_back(monkeypatch):
    model = _fitted(k=4, s=0.0)
    b = regularity_rhs(model)
    monkeypatch.setattr(refine, "REFINE_MAX_ITER", 1)
    monkeypatch.setattr(refine.refined_solve, "__kwdefaults__", {"tol": refine.REFINE_TOL, "max_iter": 1})
    inverse = Inverse(model)
    x = inverse(b)
    assert inverse.fallback is not None and "stalled" in inverse.fallback
    assert torch.equal(x, Inverse(model, mixed_precision=False)(b))


def test_refined_solve_reports_non_convergence_with_a_useless_preconditioner():
    A = torch.diag(torch.logspace(0, 12, 50, dtype=torch.float64))
    b = torch.ones(50, dtype=torch.float64)
    x, ok = refine.refined_solve(lambda v: A @ v, lambda r: r, b, 1e12, max_iter=5)
    assert not ok
    x, ok = refine.refined_solve(lambda v: A @ v, lambda R: R / A.diagonal().unsqueeze(1), b, 1e12)
    assert ok and _relerr(x, b / A.diagonal()) <= 1e-14
    # a preconditioner too weak for refinement alone (Jacobi on a coupled matrix): CG takes over
    rng = np.random.default_rng(0)
    G = torch.from_numpy(rng.normal(size=(40, 40)))
    A = G @ G.T + 40 * torch.eye(40, dtype=torch.float64)
    B = torch.from_numpy(rng.normal(size=(40, 2)))
    x, ok = refine.refined_solve(
        lambda V: A @ V, lambda R: R / A.diagonal().unsqueeze(1), B, float(torch.linalg.norm(A, 2))
    )
    assert ok and _relerr(x, torch.linalg.solve(A, B)) <= 1e-13


def test_float32_models_and_mixed_precision_false_keep_the_dense_path():
    model = _fitted(k=4, s=0.0)
    assert not Inverse(model, mixed_precision=False)._mixed()
    assert not Inverse(model, "cg")._mixed()
    m32 = SoftmaxGLM(s=0.0, dtype="float32").fit(model.X_train_.numpy(), model.y_train_.numpy())
    assert not Inverse(m32)._mixed()


def _needs_jitter(model):
    from alloop.linalg import hessian

    H = hessian(model)
    Q = model.null_space()
    if Q is not None:
        H = H + Q @ Q.T
    return int(torch.linalg.cholesky_ex(H)[1]) != 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
