"""Regularity tangent θ̇ = dθ*/ds = −H⁻¹ρ (docs/math.md §2–3), checked against brute force:
central finite differences of tightly converged refits, in s and in the weight ε of a point,
and dense linear algebra."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.preprocessing import StandardScaler

from alloop.linalg import hessian
from alloop.models import LinearGLM, LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP
from alloop.optim import minibatches, sgdf_run
from alloop.tangent import (
    TANGENT_METHODS,
    lissa_solve,
    regularity_rhs,
    regularity_tangent,
    sgdf_train,
)

H_S = 1e-3  # finite-difference step in s and ε for Newton-converged GLMs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These problems are tiny: a second thread only adds contention on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------------------- data
@functools.cache
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:400], y[:400], X[400:], y[400:]


@functools.cache
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[:500], y[:500], X[500:], y[500:]


@functools.cache
def digits():
    d = load_digits()
    X, y = d.data / 16.0, d.target
    return X[:300], y[:300], X[300:320], y[300:320]


@functools.cache
def synthetic_logistic():
    """A well-conditioned convex problem: minibatch methods converge in a few epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    w = rng.normal(size=5)
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ w + 0.5)))).astype(int)
    return X, y


GLM_CASES = {
    "ridge": (functools.partial(LinearGLM, sigma2=1.0), diabetes, 0.0),  # σ² held: ∂θ*/∂s
    "logistic": (LogisticGLM, breast_cancer, 0.0),
    "softmax": (SoftmaxGLM, digits, -1.0),
}


def tight_fit(cls, X, y, s):
    return cls(s=s, tol=1e-13, max_iter=30).fit(X, y)


def fd_theta(model, X, y, h=H_S):
    """(θ*(s+h) − θ*(s−h)) / 2h with refits warm-started at θ*(s)."""
    plus = model.with_s(model.s + h).fit(X, y)
    minus = model.with_s(model.s - h).fit(X, y)
    return (plus.theta_ - minus.theta_) / (2 * h), plus, minus


# ---------------------------------------------------------------------------- exact / cg
@pytest.mark.parametrize("case", sorted(GLM_CASES))
@pytest.mark.parametrize("method", ["exact", "cg"])
def test_tangent_matches_finite_difference_of_refits(case, method):
    cls, data, s = GLM_CASES[case]
    X, y, _, _ = data()
    model = tight_fit(cls, X, y, s)
    fd, _, _ = fd_theta(model, X, y)
    assert rel(regularity_tangent(model, method), fd) <= 1e-5


# ---------------------------------------------------------------------------- identity §3
@pytest.mark.parametrize("case", sorted(GLM_CASES))
def test_tangent_gives_loss_derivative_in_s(case):
    """g(z)·θ̇ = dℓ(z; θ*(s))/ds for held-out points z."""
    cls, data, s = GLM_CASES[case]
    X, y, Xz, yz = data()
    model = tight_fit(cls, X, y, s)
    tangent = regularity_tangent(model, "exact")
    Xz_t, yz_t = torch.as_tensor(Xz), model.encode_y(yz)
    tau = model.per_point_grads(model.theta_, Xz_t, yz_t) @ tangent
    _, plus, minus = fd_theta(model, X, y)
    fd = (model.loss(plus.theta_, Xz_t, yz_t) - model.loss(minus.theta_, Xz_t, yz_t)) / (2 * H_S)
    assert rel(tau, fd) <= 1e-5


def weighted_refit(model, X, y, weights, theta, iterations=12):
    """argmin Σ w_i ℓ(z_i; θ) + e^s C(θ) by Newton with the autograd Hessian (from θ*)."""
    lam = model.lam

    def objective(t):
        return (weights * model.loss(t, X, y)).sum() + lam * model.complexity(t)

    for _ in range(iterations):
        g = torch.func.grad(objective)(theta)
        theta = theta - torch.linalg.solve(torch.func.hessian(objective)(theta), g)
    return theta


@pytest.mark.parametrize("case", ["ridge", "logistic"])
def test_tangent_gives_complexity_change_of_upweighting(case):
    """g(z)·θ̇ = d/dε [e^s C(θ*_ε)], θ*_ε minimising F + ε·ℓ(z) (refit per ε)."""
    cls, data, s = GLM_CASES[case]
    X, y, Xz, yz = data()
    model = tight_fit(cls, X, y, s)
    tangent = regularity_tangent(model, "cg")
    Xt, yt = model.X_train_, model.y_train_
    for j in range(3):
        x_z, y_z = torch.as_tensor(Xz[j : j + 1]), model.encode_y(yz[j : j + 1])
        X_aug, y_aug = torch.cat([Xt, x_z]), torch.cat([yt, y_z])
        values = []
        for eps in (H_S, -H_S):
            w = torch.ones(len(y_aug), dtype=torch.float64)
            w[-1] = eps
            theta_eps = weighted_refit(model, X_aug, y_aug, w, model.theta_)
            values.append(model.lam * model.complexity(theta_eps))
        fd = (values[0] - values[1]) / (2 * H_S)
        tau = model.per_point_grads(model.theta_, x_z, y_z)[0] @ tangent
        assert abs(float(tau - fd)) <= 1e-5 * abs(float(fd)) + 1e-9


def test_regularity_rhs_is_derivative_in_s_of_the_objective_gradient():
    X, y, _, _ = breast_cancer()
    model = tight_fit(LogisticGLM, X, y, 0.0)
    Xt, yt, th = model.X_train_, model.y_train_, model.theta_

    def grad_at(s):
        return torch.func.grad(lambda t: model.objective(t, Xt, yt, s))(th)

    fd = (grad_at(H_S) - grad_at(-H_S)) / (2 * H_S)
    assert rel(regularity_rhs(model), fd) <= 1e-6


# ---------------------------------------------------------------------------- lissa
def test_lissa_solves_a_dense_system_from_noisy_batch_hessians():
    """Batches of a dense problem: x ≈ H⁻¹b with H = mean of the batch matrices."""
    rng = np.random.default_rng(1)
    A = torch.as_tensor(rng.normal(size=(200, 6)))
    n = A.shape[0]

    def batch_hvp(v, index):
        Ab = A[index]
        return (n / len(index)) * Ab.T @ (Ab @ v) + 5.0 * v

    H = A.T @ A + 5.0 * torch.eye(6, dtype=torch.float64)
    b = torch.as_tensor(rng.normal(size=6))
    top = float(torch.linalg.eigvalsh(H)[-1])
    x = lissa_solve(batch_hvp, b, minibatches(n, 50, 100, seed=0), step=0.1 / top)
    assert rel(x, torch.linalg.solve(H, b)) <= 1e-2


@pytest.mark.parametrize("data", ["synthetic", "ridge"])
def test_lissa_tangent_matches_exact(data):
    if data == "synthetic":
        X, y = synthetic_logistic()
        model = tight_fit(LogisticGLM, X, y, np.log(20.0))
        options = dict(epochs=20, batch_size=50)
    else:
        X, y, _, _ = diabetes()
        model = tight_fit(LinearGLM, X, y, 3.0)  # the unpenalized intercept sets λ_max ≈ n
        options = dict(epochs=100, batch_size=100)
    exact = regularity_tangent(model, "exact")
    assert rel(regularity_tangent(model, "lissa", **options), exact) <= 1e-2


def test_lissa_with_too_large_a_step_raises_instead_of_returning_nan():
    X, y = synthetic_logistic()
    model = tight_fit(LogisticGLM, X, y, 0.0)
    with pytest.raises(FloatingPointError, match="lower `step`"):
        regularity_tangent(model, "lissa", step=1.0, epochs=3)


# ---------------------------------------------------------------------------- sgdf
@pytest.mark.parametrize(
    "optimizer, options",
    [("sgd", {"lr": 0.5}), ("sgd", {"lr": 0.1, "momentum": 0.9}), ("adam", {"lr": 0.05})],
)
def test_sgdf_tangent_is_the_derivative_of_the_sgd_trajectory(optimizer, options):
    """SGDF is forward-mode through training: θ̇_T equals (θ_T(s+h) − θ_T(s−h))/2h for the
    same start and batch order, converged or not (here after only 5 epochs)."""
    X, y, _, _ = breast_cancer()
    model = tight_fit(LogisticGLM, X, y, 0.0)
    run = functools.partial(sgdf_train, optimizer=optimizer, epochs=5, batch_size=64, **options)
    tangent = run(model).tangent
    h = 1e-4
    plus = run(model.with_s(h), track_tangent=False).theta
    minus = run(model.with_s(-h), track_tangent=False).theta
    assert rel(tangent, (plus - minus) / (2 * h)) <= 1e-6


@pytest.mark.parametrize(
    "optimizer, options", [("sgd", {"lr": 0.5, "momentum": 0.8}), ("adam", {"lr": 0.05})]
)
def test_sgdf_tangent_reaches_the_exact_tangent_at_convergence(optimizer, options):
    """At the fixed point of training, θ̇ = −H⁻¹ρ (compared with the exact solve at the
    Newton θ*): the claim that SGDF yields the regularity tangent, not just dθ_T/ds."""
    X, y = synthetic_logistic()
    model = tight_fit(LogisticGLM, X, y, np.log(20.0))
    result = sgdf_train(
        model, optimizer=optimizer, epochs=40, batch_size=50, schedule="cosine", **options
    )
    assert rel(result.theta, model.theta_) <= 1e-2
    assert rel(result.tangent, regularity_tangent(model, "exact")) <= 1e-2


def test_sgdf_run_matches_closed_form_on_scalar_ridge():
    """Full-batch gradient descent on ½Σ(y − xθ)² + e^s·½θ²: θ* = Σxy/(Σx² + λ),
    dθ*/ds = −λ Σxy/(Σx² + λ)²."""
    x = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    yy = torch.tensor([0.3, -1.0, 2.0, 4.0], dtype=torch.float64)
    s = 0.7
    lam, sxy, sxx = np.exp(s), float(x @ yy), float(x @ x)

    def loss(t, i):
        return 0.5 * ((yy[i] - x[i] * t) ** 2).sum()

    result = sgdf_run(
        loss, lambda t: 0.5 * (t**2).sum(), torch.zeros(1, dtype=torch.float64),
        [np.arange(4)] * 400, [0.3] * 400, n=4, s=s,
    )
    assert result.theta.item() == pytest.approx(sxy / (sxx + lam), rel=1e-10)
    assert result.tangent.item() == pytest.approx(-lam * sxy / (sxx + lam) ** 2, rel=1e-10)


# ---------------------------------------------------------------------------- MLP
@functools.cache
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_mlp_cg_tangent_matches_finite_difference_of_refits():
    """At a well-converged local minimum (L-BFGS) the tangent of a small tanh network."""
    X, y = iris()
    model = MLP(hidden=(6,), s=-1.0, optimizer="lbfgs", tol=1e-11, max_iter=3000, warm_start=True)
    model.fit(X, y)
    h = 1e-2  # L-BFGS stops at |∇F/n| ~ 1e-10, too loose for a smaller step
    fd = (model.with_s(-1.0 + h).fit(X, y).theta_ - model.with_s(-1.0 - h).fit(X, y).theta_) / (
        2 * h
    )
    assert rel(regularity_tangent(model, "cg"), fd) <= 1e-2


@pytest.mark.parametrize("via", ["constructor", "fit"])
def test_mlp_sgdf_tangent_is_the_derivative_of_its_training(via):
    X, y = iris()
    flag = {"track_tangent": True} if via == "constructor" else {}
    model = MLP(hidden=(6,), s=-1.0, optimizer="sgd", lr=0.1, momentum=0.9, epochs=8, **flag)
    model.fit(X, y, **({} if flag else {"track_tangent": True}))
    tangent = regularity_tangent(model, "sgdf")
    h = 1e-4  # same seed: same initialisation and batch order
    plus = model.with_s(-1.0 + h).fit(X, y, track_tangent=False).theta_
    minus = model.with_s(-1.0 - h).fit(X, y, track_tangent=False).theta_
    assert rel(tangent, (plus - minus) / (2 * h)) <= 1e-6


# ---------------------------------------------------------------------------- bad input
def test_singular_hessian_raises_clearly_or_is_damped():
    """λ → 0 with fewer points than parameters: H = XᵀX + λI is numerically singular."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 20)), rng.normal(size=10)
    near_zero = LinearGLM(s=0.0, fit_intercept=False, sigma2=1.0).fit(X, y).with_s(-60.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            undamped = regularity_tangent(near_zero, "exact")
        except ValueError as exc:  # a clear error ...
            assert "damping" in str(exc)
        else:  # ... or an automatic damping that says so; never NaN
            assert torch.isfinite(undamped).all()
            assert any("singular" in str(w.message) for w in caught)
    delta = 1e-3
    H = hessian(near_zero) + delta * torch.eye(20, dtype=torch.float64)
    brute = -torch.linalg.solve(H, regularity_rhs(near_zero))
    for method in ("exact", "cg"):
        damped = regularity_tangent(near_zero, method, damping=delta)
        assert rel(damped, brute) <= 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a slow LiSSA warns; never NaN
        assert torch.isfinite(regularity_tangent(near_zero, "lissa", damping=delta)).all()


def test_indefinite_hessian_away_from_a_minimum_raises():
    """An untrained network: H has negative eigenvalues, and no solver returns a number."""
    X, y = iris()
    untrained = MLP(hidden=(6,), s=-2.0, optimizer="sgd", epochs=0).fit(X, y)
    assert float(torch.linalg.eigvalsh(hessian(untrained))[0]) < 0  # the premise
    for method in ("exact", "cg", "lissa"):
        with pytest.raises(ValueError, match="positive definite|non-positive curvature"):
            regularity_tangent(untrained, method)


def test_sgdf_without_a_tracked_tangent_raises():
    X, y = iris()
    untracked = MLP(hidden=(4,), optimizer="adam", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="track_tangent=True"):
        regularity_tangent(untracked, "sgdf")
    glm = LogisticGLM().fit(X, y == 0)
    with pytest.raises(ValueError, match="sgdf_train"):
        regularity_tangent(glm, "sgdf")
    with pytest.raises(ValueError, match="lbfgs"):
        MLP(optimizer="lbfgs", track_tangent=True)
    with pytest.raises(ValueError, match="lbfgs"):
        MLP(hidden=(4,), optimizer="lbfgs").fit(X, y, track_tangent=True)
    tracked = MLP(hidden=(4,), optimizer="sgd", epochs=1, track_tangent=True).fit(X, y)
    with pytest.raises(ValueError, match="refit"):
        regularity_tangent(tracked.with_s(1.0), "sgdf")
    refit_untracked = tracked.fit(X, y, track_tangent=False)
    with pytest.raises(ValueError, match="track_tangent=True"):
        regularity_tangent(refit_untracked, "sgdf")


def test_unknown_method_and_unfitted_model():
    assert TANGENT_METHODS == ("exact", "cg", "lissa", "sgdf")
    X, y, _, _ = diabetes()
    model = LinearGLM().fit(X, y)
    with pytest.raises(ValueError, match="unknown tangent method 'newton'"):
        regularity_tangent(model, "newton")
    with pytest.raises(RuntimeError, match="fit the model"):
        regularity_tangent(LinearGLM(), "cg")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        sgdf_train(model, lr=1e6, epochs=20)


def test_sparse_features_give_the_dense_results():
    """Forward-mode AD has no sparse matmul: minibatch solvers densify each batch."""
    rng = np.random.default_rng(0)
    X = sp.random(200, 30, density=0.2, random_state=0, format="csr")
    y = rng.integers(0, 2, 200)
    sparse, dense = LogisticGLM(s=1.0).fit(X, y), LogisticGLM(s=1.0).fit(X.toarray(), y)
    a, b = sgdf_train(sparse, epochs=2), sgdf_train(dense, epochs=2)
    assert torch.allclose(a.tangent, b.tangent, rtol=0, atol=1e-12)
    options = dict(epochs=3, warn_residual=np.inf)
    assert torch.allclose(
        regularity_tangent(sparse, "lissa", **options),
        regularity_tangent(dense, "lissa", **options),
        rtol=0, atol=1e-12,
    )
