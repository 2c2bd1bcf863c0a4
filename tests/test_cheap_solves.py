"""The MLP's cheaper solves (Jacobi PCG, warm starts, subsampled Hessian products, SSI's
summed right-hand side) against dense Hessians and dense solves."""

import numpy as np
import pytest
import torch

from alloop.linalg import Inverse, conjugate_gradient, gauss_newton_diagonal, hessian, hvp_fn
from alloop.linalg.hessian import sample_outputs, squared_gradient_sum, subsample_rows
from alloop.models import LogisticGLM
from alloop.models import likelihoods as lk
from alloop.models.mlp import MLP
from alloop.regularity import sti_scores
from alloop.regularity.hypergradient import validation_tensors
from alloop.regularity.ssi import _hvp, _third_order_gradient, ssi_directions
from alloop.tangent import regularity_rhs

DTYPE = torch.float64


@pytest.fixture(scope="module")
def mlp():
    """A small network fitted to convergence (L-BFGS), so H is positive definite."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0.8)
    return MLP(hidden=(4,), s=-1.0, optimizer="lbfgs", tol=1e-10, dropout=0.0).fit(X, y)


def dense_solve(H: torch.Tensor, Q: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    """The pseudo-inverse of H on the complement of the null space Q, by a dense solve."""
    if Q is None:
        return torch.linalg.solve(H, b)
    x = torch.linalg.solve(H + Q @ Q.T, b - Q @ (Q.T @ b))
    return x - Q @ (Q.T @ x)


def spd(p: int, seed: int) -> torch.Tensor:
    """A badly scaled SPD matrix (diagonal from 1e-2 to 1e3): where Jacobi pays."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, p, dtype=DTYPE, generator=g)
    scale = torch.logspace(-1, 1.5, p, dtype=DTYPE)
    return scale[:, None] * (A @ A.T / p + torch.eye(p, dtype=DTYPE)) * scale[None, :]


def test_preconditioned_cg_solves_like_a_dense_solve_and_needs_fewer_products():
    A = spd(30, 0)
    B = torch.randn(30, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    reference = torch.linalg.solve(A, B)
    counts = {}
    for name, precond in (("plain", None), ("jacobi", lambda R: R / A.diagonal()[:, None])):
        calls = [0]

        def op(V, calls=calls):
            calls[0] += 1
            return A @ V

        X = conjugate_gradient(op, B, tol=1e-13, preconditioner=precond)
        assert torch.allclose(X, reference, rtol=1e-9, atol=1e-11), name
        counts[name] = calls[0]
    assert counts["jacobi"] < counts["plain"]
    # one right-hand side goes through the same code with a (p,) preconditioner
    x = conjugate_gradient(lambda v: A @ v, B[:, 0], tol=1e-13,
                           preconditioner=lambda r: r / A.diagonal())
    assert torch.allclose(x, reference[:, 0], rtol=1e-9, atol=1e-11)


def test_cg_from_a_warm_start():
    A = spd(20, 2)
    b = torch.randn(20, dtype=DTYPE, generator=torch.Generator().manual_seed(3))
    exact = torch.linalg.solve(A, b)
    calls = [0]

    def op(v):
        calls[0] += 1
        return A @ v

    # started at the solution, CG only checks the residual (one product) and stops
    assert torch.equal(conjugate_gradient(op, b, tol=1e-8, x0=exact), exact)
    assert calls[0] == 1
    near = exact + 1e-3 * torch.ones_like(exact)
    x = conjugate_gradient(lambda v: A @ v, b, tol=1e-13, x0=near)
    assert torch.allclose(x, exact, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="x0 must have the shape"):
        conjugate_gradient(lambda v: A @ v, b, x0=torch.zeros(3, dtype=DTYPE))


def test_network_hessian_products_match_the_dense_hessian(mlp):
    H = hessian(mlp)  # torch.func.hessian of the objective
    v = torch.randn(H.shape[0], dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hvp_fn(mlp)(v), H @ v, rtol=1e-10, atol=1e-10)
    # the subsampled Hessian (n/m) Σ_S ∇²ℓ + λ∇²C, brute force on the same rows
    Xs, ys, weight = subsample_rows(mlp.X_train_, mlp.y_train_, 15, seed=0)
    assert weight == 40 / 15 and Xs.shape[0] == 15
    brute = torch.func.hessian(
        lambda t: weight * mlp.loss(t, Xs, ys).sum() + mlp.lam * mlp.complexity(t)
    )(mlp.theta_)
    assert torch.allclose(hvp_fn(mlp, rows=15)(v), brute @ v, rtol=1e-10, atol=1e-10)
    # as many rows as the training set (or more): the full Hessian
    assert torch.allclose(hvp_fn(mlp, rows=40)(v), H @ v, rtol=1e-10, atol=1e-10)
    assert torch.allclose(hvp_fn(mlp, rows=10**6)(v), H @ v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("options", [
    {"preconditioner": "jacobi"},
    {"preconditioner": None},
    {"preconditioner": "jacobi", "damping": 0.5},
])
def test_network_cg_solves_match_dense_solves(mlp, options):
    H = hessian(mlp)
    damping = options.get("damping", 0.0)
    A = H + damping * torch.eye(H.shape[0], dtype=DTYPE)
    b = torch.randn(H.shape[0], 2, dtype=DTYPE, generator=torch.Generator().manual_seed(4))
    Q = mlp.null_space()
    reference = dense_solve(A, Q, b)
    inverse = Inverse(mlp, "cg", tol=1e-12, **options)
    assert torch.allclose(inverse(b), reference, rtol=1e-7, atol=1e-9)
    assert torch.allclose(inverse(b[:, 0]), reference[:, 0], rtol=1e-7, atol=1e-9)


def test_subsampled_cg_solves_the_subsampled_system(mlp):
    Xs, ys, weight = subsample_rows(mlp.X_train_, mlp.y_train_, 20, seed=0)
    Hs = torch.func.hessian(
        lambda t: weight * mlp.loss(t, Xs, ys).sum() + mlp.lam * mlp.complexity(t)
    )(mlp.theta_)
    # θ* minimises the full objective, not the subsample's: damp the latter until it is SPD
    damping = 0.1 + 1.5 * max(0.0, -float(torch.linalg.eigvalsh(Hs)[0]))
    Hs = Hs + damping * torch.eye(mlp.theta_.numel(), dtype=DTYPE)
    b = torch.randn(mlp.theta_.numel(), dtype=DTYPE, generator=torch.Generator().manual_seed(5))
    reference = dense_solve(Hs, mlp.null_space(), b)
    for preconditioner in (None, "jacobi"):
        inverse = Inverse(mlp, "cg", damping=damping, hvp_rows=20, preconditioner=preconditioner)
        assert torch.allclose(inverse(b), reference, rtol=1e-7, atol=1e-9), preconditioner


def test_squared_gradients_and_the_gauss_newton_identity(mlp):
    theta, X = mlp.theta_, mlp.X_train_[:10]
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 1])
    loop = sum(
        torch.func.grad(lambda t, i=i: mlp.loss(t, X[i : i + 1], y[i : i + 1]).sum())(theta) ** 2
        for i in range(10)
    )
    assert torch.allclose(squared_gradient_sum(mlp, theta, X, y), loop, rtol=1e-10, atol=1e-12)
    # E_{y~p}[g gᵀ] = JᵀΛJ: averaging g² over every class, weighted by p, is the GN diagonal
    f = mlp.output(theta, X)
    prob = torch.softmax(f, dim=1)
    expected = sum(
        (prob[:, k:k + 1] * mlp.per_point_grads(theta, X, torch.full((10,), k)) ** 2).sum(0)
        for k in range(3)
    )
    J = torch.func.jacrev(lambda t: mlp.output(t, X))(theta)  # (n, K, p)
    Lam = lk.output_hessian("categorical", f)
    gauss_newton = torch.einsum("nkp,nkl,nlp->p", J, Lam, J)
    assert torch.allclose(expected, gauss_newton, rtol=1e-10, atol=1e-12)
    # the one-sample estimate is seeded (the same twice) and non-negative
    a, b = gauss_newton_diagonal(mlp, seed=1), gauss_newton_diagonal(mlp, seed=1)
    assert torch.equal(a, b) and bool((a >= 0).all())


def test_sampled_labels_follow_the_predictive_law():
    f = torch.tensor([[0.0, 1.0, -1.0]], dtype=DTYPE).repeat(20_000, 1)
    draws = sample_outputs("categorical", f, 1.0, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=3).to(DTYPE) / len(draws)
    assert torch.allclose(frequencies, torch.softmax(f[0], 0), atol=0.015)
    bern = sample_outputs("bernoulli", f[:, 1:2], 1.0, torch.Generator().manual_seed(0))
    assert abs(float(bern.mean()) - float(torch.sigmoid(torch.tensor(1.0)))) < 0.015
    gauss = sample_outputs("gaussian", f[:, 1:2], 4.0, torch.Generator().manual_seed(0))
    assert abs(float(gauss.mean()) - 1.0) < 0.05 and abs(float(gauss.var()) - 4.0) < 0.15


def test_sti_scores_with_cheap_solves_match_the_exact_path(mlp):
    X = np.random.default_rng(1).normal(size=(25, 3))
    exact = sti_scores(mlp, X, tangent_method="exact", solve_method="exact")
    for options in ({"preconditioner": "jacobi"}, {}):
        cheap = sti_scores(
            mlp, X, tangent_method="cg", solve_method="cg",
            solve_options={"tol": 1e-12, **options},
        )
        np.testing.assert_allclose(cheap, exact, rtol=1e-7, atol=1e-12 * exact.max())


def test_ssi_direction_d_is_b_minus_a_plus_e():
    """d from one summed right-hand side equals the three solves of its definition."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    y = (X @ [1.0, -1.0, 0.5] + rng.normal(size=60) > 0).astype(int)
    model = LogisticGLM(s=0.0).fit(X[:40], y[:40])
    dirs = ssi_directions(model, X[40:], y[40:], bounds=None)
    H = hessian(model)
    Xv, yv = validation_tensors(model, X[40:], y[40:])
    theta_dot = -torch.linalg.solve(H, regularity_rhs(model))
    g_val = torch.func.grad(lambda t: model.loss(t, Xv, yv).sum())(model.theta_)
    u = torch.linalg.solve(H, g_val)
    a = torch.linalg.solve(H, _hvp(model, Xv, yv, theta_dot))
    b = model.lam * torch.linalg.solve(H, model.penalty_mask() * u)  # ∇²C = diag(mask)
    e = torch.linalg.solve(H, _third_order_gradient(model, u, theta_dot))
    assert torch.allclose(dirs.u, u, rtol=1e-10, atol=1e-12)
    assert torch.allclose(dirs.d, b - a + e, rtol=1e-9, atol=1e-12)


def test_bad_solve_options_are_named(mlp):
    with pytest.raises(ValueError, match="unknown preconditioner 'ilu'"):
        Inverse(mlp, "cg", preconditioner="ilu")
    with pytest.raises(ValueError, match="hvp_rows must be a positive integer.*0"):
        Inverse(mlp, "cg", hvp_rows=0)


def test_the_sti_strategy_takes_the_cg_options(mlp):
    import strategies
    from strategies.base import StrategyOptionsError

    X = np.random.default_rng(3).normal(size=(10, 3))
    sti = strategies.get("sti")
    exact = sti.score(mlp, X, tangent_method="exact", solve_method="exact")
    cheap = sti.score(
        mlp, X, tangent_method="cg", solve_method="cg",
        solve_options={"tol": 1e-12, "preconditioner": "jacobi", "hvp_rows": 40},
    )
    np.testing.assert_allclose(cheap, exact, rtol=1e-7, atol=1e-12 * exact.max())
    with pytest.raises(StrategyOptionsError, match="preconditioner"):
        sti.score(mlp, X, tangent_method="cg", solve_options={"preconditioner": "ilu"})
