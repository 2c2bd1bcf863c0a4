"""SLD, STI and SSI against brute force: refits of a weighted objective and finite differences.

The reference never calls alloop.regularity: a test-local numpy Newton fits

    F(θ; s, ε) = Σ_i ℓ(z_i; θ) + e^s·½‖w‖² + ε·ℓ(z; θ)

(the candidate z appended with weight ε) to machine precision, and every derivative is a
central finite difference of such refits in s or ε. ds*/dε re-selects s* = argmin V on the
validation split after up-weighting z (a root of the finite-difference V'(s), by brentq).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import brentq
from scipy.special import expit, logsumexp, softmax
from scipy.stats import spearmanr

import strategies
from alloop.models import LinearGLM, LogisticGLM, NotDifferentiableError, SoftmaxGLM
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import DTYPE
from alloop.regularity import heuristics as hx
from alloop.regularity import (
    regularity_loss_derivative,
    s_influence_scores,
    sld_scores,
    ssi_directions,
    ssi_scores,
    sti_scores,
)

# --------------------------------------------------------------------------- brute force


def design(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])


def nll(lik, F, y, sigma2=1.0):
    if lik == "gaussian":
        return (y - F[:, 0]) ** 2 / (2 * sigma2)
    if lik == "bernoulli":
        return np.logaddexp(0.0, F[:, 0]) - y * F[:, 0]
    return logsumexp(F, axis=1) - F[np.arange(len(y)), y.astype(int)]


def _residual_and_curvature(lik, F, y, K, sigma2):
    if lik == "gaussian":
        return -(y - F[:, 0])[:, None] / sigma2, np.full((F.shape[0], 1, 1), 1.0 / sigma2)
    if lik == "bernoulli":
        p = expit(F[:, 0])
        return (p - y)[:, None], (p * (1 - p))[:, None, None]
    P = softmax(F, axis=1)
    return P - np.eye(K)[y.astype(int)], np.einsum("na,ab->nab", P, np.eye(K)) - P[:, :, None] * P[
        :, None, :
    ]


def brute_fit(lik, X, y, s, weights=None, K=1, sigma2=1.0, theta0=None):
    """Newton on Σ w_i ℓ_i + e^s ½‖W‖² (intercept row free) to machine precision.

    θ is the row-major (d + 1, K) matrix [W; b]; softmax intercepts are pinned to sum 0.
    """
    Xd = design(X)
    n, q = Xd.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    mask = np.ones((q, K))
    mask[-1] = 0.0
    lam = np.exp(s)
    gauge = np.zeros((q * K, q * K))
    if lik == "categorical":
        Q = np.zeros((q, K))
        Q[-1] = 1.0 / np.sqrt(K)
        gauge = Q.reshape(-1, 1) @ Q.reshape(1, -1)
    theta = np.zeros((q, K)) if theta0 is None else np.array(theta0, dtype=float).reshape(q, K)

    def objective(t):
        return w @ nll(lik, Xd @ t, y, sigma2) + 0.5 * lam * np.sum(mask * t * t)

    for _ in range(200):
        R, Lam = _residual_and_curvature(lik, Xd @ theta, y, K, sigma2)
        grad = Xd.T @ (w[:, None] * R) + lam * mask * theta
        H = np.einsum("n,ni,nj,nab->iajb", w, Xd, Xd, Lam).reshape(q * K, q * K)
        step = np.linalg.solve(H + lam * np.diag(mask.ravel()) + gauge, grad.ravel()).reshape(q, K)
        t, f0 = 1.0, objective(theta)
        while objective(theta - t * step) > f0 + 1e-12 * abs(f0) and t > 1e-8:
            t *= 0.5
        theta = theta - t * step
        if np.abs(step).max() < 1e-14 * (1.0 + np.abs(theta).max()):
            break
    return theta.ravel()


class Brute:
    """Refits of one problem: training set, validation split, likelihood."""

    def __init__(self, lik, X, y, Xv=None, yv=None, K=1, sigma2=1.0):
        self.lik, self.X, self.y, self.Xv, self.yv = lik, X, y.astype(float), Xv, yv
        self.K, self.sigma2 = K, sigma2
        self.start = None

    def theta(self, s, z=None, eps=0.0):
        X, y, w = self.X, self.y, np.ones(len(self.y))
        if z is not None:
            X, y, w = np.vstack([X, z[0][None]]), np.append(y, z[1]), np.append(w, eps)
        return brute_fit(self.lik, X, y, s, w, self.K, self.sigma2, self.start)

    def out(self, theta, X):
        return design(X) @ theta.reshape(-1, self.K)

    def loss(self, theta, x, y):
        return nll(self.lik, self.out(theta, x[None]), np.array([float(y)]), self.sigma2)[0]

    def complexity(self, theta):
        W = theta.reshape(-1, self.K)[:-1]
        return 0.5 * np.sum(W**2)

    def V(self, s, z=None, eps=0.0):
        theta = self.theta(s, z, eps)
        return nll(self.lik, self.out(theta, self.Xv), self.yv.astype(float), self.sigma2).sum()

    def dV(self, s, z=None, eps=0.0, h=1e-4):
        return (self.V(s + h, z, eps) - self.V(s - h, z, eps)) / (2 * h)

    def s_star(self, lo, hi, z=None, eps=0.0):
        return brentq(lambda s: self.dV(s, z, eps), lo, hi, xtol=1e-13, rtol=1e-15)

    # --- derivatives by central differences of refits
    def tangent(self, s, h=1e-4):
        return (self.theta(s + h) - self.theta(s - h)) / (2 * h)

    def influence(self, s, z, h=1e-4):
        return (self.theta(s, z, h) - self.theta(s, z, -h)) / (2 * h)

    def tau_by_s(self, s, z, h=1e-4):
        """dℓ(z; θ*(s))/ds."""
        return (self.loss(self.theta(s + h), *z) - self.loss(self.theta(s - h), *z)) / (2 * h)

    def tau_by_eps(self, s, z, h=1e-4):
        """d/dε [e^s C(θ*_ε)]."""
        c = [self.complexity(self.theta(s, z, e)) for e in (h, -h)]
        return np.exp(s) * (c[0] - c[1]) / (2 * h)

    def sti(self, s, z):
        t = self.tangent(s)
        return float((t / np.linalg.norm(t)) @ self.influence(s, z)) ** 2

    def ds_star(self, s_star, z, eps=1e-4, width=0.3):
        lo, hi = s_star - width, s_star + width
        return (self.s_star(lo, hi, z, eps) - self.s_star(lo, hi, z, -eps)) / (2 * eps)


def relerr(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --------------------------------------------------------------------------- problems

RIDGE_SIGMA2 = 0.7


def ridge_problem(seed=0, n=40, nv=25, d=6):
    rng = np.random.default_rng(seed)
    w = 0.5 * rng.normal(size=d)

    def draw(m):
        X = rng.normal(size=(m, d))
        return X, X @ w + 0.3 + rng.normal(size=m)

    (X, y), (Xv, yv), (Xc, yc) = draw(n), draw(nv), draw(8)
    return Brute("gaussian", X, y, Xv, yv, sigma2=RIDGE_SIGMA2), Xc, yc


def logistic_problem(seed=5, n=60, nv=40, d=3, n_cand=50):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)

    def draw(m):
        X = rng.normal(size=(m, d))
        return X, (rng.random(m) < expit(X @ w + 0.3)).astype(int)

    (X, y), (Xv, yv), (Xc, yc) = draw(n), draw(nv), draw(n_cand)
    return Brute("bernoulli", X, y, Xv, yv), Xc, yc


def softmax_problem(seed=2, n=60, nv=40, d=3, K=3):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, K))

    def draw(m):
        X = rng.normal(size=(m, d))
        P = softmax(X @ W, axis=1)
        return X, np.array([rng.choice(K, p=p) for p in P])

    (X, y), (Xv, yv), (Xc, yc) = draw(n), draw(nv), draw(6)
    return Brute("categorical", X, y, Xv, yv, K=K), Xc, yc


MODELS = {"gaussian": LinearGLM, "bernoulli": LogisticGLM, "categorical": SoftmaxGLM}
PROBLEMS = {
    "gaussian": ridge_problem,
    "bernoulli": logistic_problem,
    "categorical": softmax_problem,
}


def fitted(brute, s):
    kwargs = {"sigma2": brute.sigma2} if brute.lik == "gaussian" else {}
    y = brute.y if brute.lik == "gaussian" else brute.y.astype(int)
    return MODELS[brute.lik](s=s, **kwargs).fit(brute.X, y)


@pytest.fixture(scope="module")
def ridge_at_s_star():
    brute, Xc, yc = ridge_problem()
    s_star = brute.s_star(-6.0, 6.0)
    return brute, fitted(brute, s_star), s_star, Xc, yc


@pytest.fixture(scope="module")
def logistic_at_s_star():
    brute, Xc, yc = logistic_problem()
    s_star = brute.s_star(-4.0, 4.0)
    brute.start = brute.theta(s_star)  # warm start for the many refits near s*
    return brute, fitted(brute, s_star), s_star, Xc, yc


# --------------------------------------------------------------------------- closed forms


def _autograd_gradients(model, x, labels):
    """∇_θ ℓ((x, y); θ*) for each label, by reverse-mode autograd of the model's loss."""
    X = torch.as_tensor(x[None], dtype=DTYPE)
    grad = torch.func.grad(lambda t, y: model.loss(t, X, y.view(1))[0])
    return torch.stack([grad(model.theta_, y) for y in labels])


@pytest.mark.parametrize("lik", ["bernoulli", "categorical"])
def test_expected_square_matches_enumeration_over_classes(lik):
    brute, Xc, _ = PROBLEMS[lik]()
    model = fitted(brute, 0.3)
    rng = np.random.default_rng(1)
    for x in Xc[:4]:
        v = torch.as_tensor(rng.normal(size=model.theta_.numel()))
        X = torch.as_tensor(x[None], dtype=DTYPE)
        f, fdot = torch.func.jvp(lambda t, X=X: model.output(t, X), (model.theta_,), (v,))
        n_classes = 2 if lik == "bernoulli" else brute.K
        dtype = DTYPE if lik == "bernoulli" else torch.long
        labels = torch.arange(n_classes).to(dtype)
        g_dot_v = _autograd_gradients(model, x, labels) @ v
        proba = model.predict_proba(x[None])[0]
        expected = float(proba @ g_dot_v.numpy() ** 2)
        closed = hx.expected_squared_directional_derivative(lik, f, fdot).item()
        assert closed == pytest.approx(expected, rel=1e-10)
        for k in range(n_classes):  # the labeled closed form is the same derivative
            labeled = hx.directional_derivative(lik, f, fdot, labels[k : k + 1]).item()
            assert labeled == pytest.approx(g_dot_v[k].item(), rel=1e-10, abs=1e-14)


def test_expected_square_gaussian_matches_monte_carlo():
    brute, Xc, _ = ridge_problem()
    model = fitted(brute, 0.0)
    rng = np.random.default_rng(2)
    v = torch.as_tensor(rng.normal(size=model.theta_.numel()))
    X = torch.as_tensor(Xc[:1], dtype=DTYPE)
    f, fdot = torch.func.jvp(lambda t: model.output(t, X), (model.theta_,), (v,))
    ys = torch.as_tensor(f.item() + np.sqrt(RIDGE_SIGMA2) * rng.normal(size=20_000))
    grads = torch.func.vmap(
        torch.func.grad(lambda t, y: model.loss(t, X, y.view(1))[0]), in_dims=(None, 0)
    )(model.theta_, ys)
    samples = (grads @ v).numpy() ** 2
    closed = hx.expected_squared_directional_derivative("gaussian", f, fdot, RIDGE_SIGMA2).item()
    standard_error = samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - closed) < 4 * standard_error


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
def test_gauss_newton_form_is_the_point_hessian(lik):
    brute, Xc, yc = PROBLEMS[lik]()
    model = fitted(brute, 0.0)
    rng = np.random.default_rng(3)
    u, v = (torch.as_tensor(rng.normal(size=model.theta_.numel())) for _ in range(2))
    X = torch.as_tensor(Xc[:1], dtype=DTYPE)
    y = model.encode_y(yc[:1])
    H = torch.func.hessian(lambda t: model.loss(t, X, y)[0])(model.theta_)
    f, fu = torch.func.jvp(lambda t: model.output(t, X), (model.theta_,), (u,))
    _, fv = torch.func.jvp(lambda t: model.output(t, X), (model.theta_,), (v,))
    closed = hx.gauss_newton_form(lik, f, fu, fv, model.sigma2).item()
    assert closed == pytest.approx((u @ H @ v).item(), rel=1e-10)


def test_closed_forms_reject_bad_input():
    f = torch.zeros(3, 1, dtype=DTYPE)
    with pytest.raises(ValueError, match="shape"):
        hx.expected_squared_directional_derivative("bernoulli", f, torch.zeros(3, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="unknown likelihood"):
        hx.expected_squared_directional_derivative("poisson", f, f)


# --------------------------------------------------------------------------- labeled scores


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
def test_tau_is_the_loss_derivative_in_s_and_the_complexity_influence(lik):
    """τ(z) = g(z)·θ̇ = dℓ(z; θ*(s))/ds = d/dε[e^s C(θ*_ε)]; SLD(z) = τ(z)²."""
    brute, Xc, yc = PROBLEMS[lik]()
    s = 0.4
    model = fitted(brute, s)
    tau = regularity_loss_derivative(model, Xc[:5], yc[:5])
    by_s = [brute.tau_by_s(s, (x, y)) for x, y in zip(Xc[:5], yc[:5], strict=True)]
    by_eps = [brute.tau_by_eps(s, (x, y)) for x, y in zip(Xc[:5], yc[:5], strict=True)]
    assert relerr(tau, by_s) < 1e-6
    assert relerr(tau, by_eps) < 1e-6
    assert relerr(sld_scores(model, Xc[:5], yc[:5]), np.square(by_eps)) < 1e-6


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
def test_sti_labeled_matches_refits(lik):
    brute, Xc, yc = PROBLEMS[lik]()
    s = -0.2
    model = fitted(brute, s)
    expected = [brute.sti(s, (x, y)) for x, y in zip(Xc[:5], yc[:5], strict=True)]
    assert relerr(sti_scores(model, Xc[:5], yc[:5]), expected) < 1e-6


def test_ssi_ridge_matches_reselected_s_star(ridge_at_s_star):
    brute, model, s_star, Xc, yc = ridge_at_s_star
    signed = s_influence_scores(model, Xc, yc, brute.Xv, brute.yv)
    expected = [brute.ds_star(s_star, (x, y)) for x, y in zip(Xc, yc, strict=True)]
    assert relerr(signed, expected) < 1e-3
    assert relerr(ssi_scores(model, Xc, brute.Xv, brute.yv, yc), np.square(expected)) < 2e-3
    # For squared loss and a linear model the spec's three-solve form is already exact.
    spec = s_influence_scores(model, Xc, yc, brute.Xv, brute.yv, third_order=False)
    assert relerr(spec, expected) < 1e-3


def test_ssi_logistic_ranks_like_reselected_s_star(logistic_at_s_star):
    brute, model, s_star, Xc, yc = logistic_at_s_star
    scores = ssi_scores(model, Xc, brute.Xv, brute.yv, yc)
    expected = np.square(
        [brute.ds_star(s_star, (x, y), eps=1e-3) for x, y in zip(Xc, yc, strict=True)]
    )
    assert spearmanr(scores, expected)[0] >= 0.99
    assert relerr(scores, expected) < 1e-4


# --------------------------------------------------------------------------- unlabeled scores


@pytest.mark.parametrize("lik", ["bernoulli", "categorical"])
def test_unlabeled_sld_sti_enumerate_the_predictive_distribution(lik):
    brute, Xc, _ = PROBLEMS[lik]()
    s = 0.1
    model = fitted(brute, s)
    X = Xc[:3]
    proba = model.predict_proba(X)
    labels = range(proba.shape[1])
    sld = [
        sum(p[k] * brute.tau_by_eps(s, (x, k)) ** 2 for k in labels)
        for x, p in zip(X, proba, strict=True)
    ]
    sti = [sum(p[k] * brute.sti(s, (x, k)) for k in labels) for x, p in zip(X, proba, strict=True)]
    assert relerr(sld_scores(model, X), sld) < 1e-6
    assert relerr(sti_scores(model, X), sti) < 1e-6


def test_unlabeled_gaussian_scores_are_two_point_expectations(ridge_at_s_star):
    """For ridge every signed score is affine in y, so E over y ~ N(f, σ²) of its square is
    exactly the mean over the two labels y = f ± σ."""
    brute, model, s_star, Xc, _ = ridge_at_s_star
    X = Xc[:3]
    f = model.predict(X)
    sigma = np.sqrt(RIDGE_SIGMA2)
    pairs = [[(x, fx + sigma), (x, fx - sigma)] for x, fx in zip(X, f, strict=True)]
    sld = [np.mean([brute.tau_by_eps(s_star, z) ** 2 for z in zs]) for zs in pairs]
    sti = [np.mean([brute.sti(s_star, z) for z in zs]) for zs in pairs]
    ssi = [np.mean([brute.ds_star(s_star, z) ** 2 for z in zs]) for zs in pairs]
    assert relerr(sld_scores(model, X), sld) < 1e-6
    assert relerr(sti_scores(model, X), sti) < 1e-6
    assert relerr(ssi_scores(model, X, brute.Xv, brute.yv), ssi) < 2e-3


def test_ssi_softmax_matches_reselected_s_star():
    """Softmax: K outputs per direction through the stacked-weights product (three directions)."""
    brute, Xc, yc = softmax_problem()
    s_star = brute.s_star(-4.0, 4.0)
    brute.start = brute.theta(s_star)
    model = fitted(brute, s_star)
    X, y = Xc[:3], yc[:3]
    ds = [brute.ds_star(s_star, (x, k), eps=1e-3) for x, k in zip(X, y, strict=True)]
    assert relerr(s_influence_scores(model, X, y, brute.Xv, brute.yv), ds) < 1e-4


def test_unlabeled_ssi_logistic_enumerates_both_labels(logistic_at_s_star):
    brute, model, s_star, Xc, _ = logistic_at_s_star
    X = Xc[:4]
    proba = model.predict_proba(X)
    expected = [
        sum(p[k] * brute.ds_star(s_star, (x, k), eps=1e-3) ** 2 for k in (0, 1))
        for x, p in zip(X, proba, strict=True)
    ]
    assert relerr(ssi_scores(model, X, brute.Xv, brute.yv), expected) < 1e-4


# --------------------------------------------------------------------------- other models


class TorchLogistic(DifferentiableModel):
    """Logistic regression written as a plain differentiable model (not a GLM), so the scores
    take the generic autograd paths: JVPs, validation HVPs and third-order terms by torch.func."""

    likelihood = "bernoulli"

    def __init__(self, s=0.0):
        super().__init__()
        self.s = s

    def init_params(self, n_features, n_outputs):
        self.d = n_features
        return torch.zeros(n_features + 1, dtype=DTYPE)

    def output(self, theta, X):
        return (X @ theta[: self.d] + theta[self.d]).unsqueeze(1)

    def penalty_mask(self):
        mask = torch.ones(self.d + 1, dtype=DTYPE)
        mask[self.d] = 0.0
        return mask

    def _fit_params(self, theta0, X, y):
        theta = theta0
        for _ in range(50):
            grad = torch.func.grad(lambda t: self.objective(t, X, y))(theta)
            hess = torch.func.hessian(lambda t: self.objective(t, X, y))(theta)
            theta = theta - torch.linalg.solve(hess, grad)
        return theta


def test_generic_differentiable_model_matches_refits(logistic_at_s_star):
    brute, _, s_star, Xc, yc = logistic_at_s_star
    model = TorchLogistic(s=s_star).fit(brute.X, brute.y.astype(int))
    X, y = Xc[:4], yc[:4]
    ds = [brute.ds_star(s_star, (x, k), eps=1e-3) for x, k in zip(X, y, strict=True)]
    assert relerr(s_influence_scores(model, X, y, brute.Xv, brute.yv), ds) < 1e-4
    sld = [brute.tau_by_eps(s_star, (x, k)) ** 2 for x, k in zip(X, y, strict=True)]
    assert relerr(sld_scores(model, X, y), sld) < 1e-6


# --------------------------------------------------------------------------- strategies


def test_strategies_are_registered_with_their_needs():
    assert strategies.get("sld").needs == ("gradients",)
    assert strategies.get("sti").needs == ("gradients",)
    assert strategies.get("ssi").needs == ("gradients", "validation")


def test_strategy_scores_use_the_context_and_refuse_other_keys(ridge_at_s_star):
    brute, model, _, Xc, yc = ridge_at_s_star
    context = {
        "X_labeled": brute.X,
        "y_labeled": brute.y,
        "X_val": brute.Xv,
        "y_val": brute.yv,
        "rng": np.random.default_rng(0),
    }
    # a key that is neither context nor a declared option was once silently ignored
    for name in ("sld", "sti", "ssi"):
        with pytest.raises(ValueError, match="unknown option 'something_else'"):
            strategies.get(name).score(model, Xc, something_else=1, **context)
    assert np.allclose(strategies.get("sld").score(model, Xc, **context), sld_scores(model, Xc))
    assert np.allclose(strategies.get("sti").score(model, Xc, **context), sti_scores(model, Xc))
    assert np.allclose(
        strategies.get("ssi").score(model, Xc, **context),
        ssi_scores(model, Xc, brute.Xv, brute.yv),
    )
    labeled = strategies.get("sld").score(model, Xc, variant="labeled", y_pool=yc, **context)
    assert np.allclose(labeled, sld_scores(model, Xc, yc))


def test_batches_sparse_rows_and_cg_give_the_same_scores(ridge_at_s_star):
    brute, model, _, Xc, _ = ridge_at_s_star
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, Xc.shape[1]))
    X[rng.random(X.shape) < 0.5] = 0.0
    dirs = ssi_directions(model, brute.Xv, brute.yv)
    for score in (
        lambda **kw: sld_scores(model, **kw),
        lambda **kw: sti_scores(model, **kw),
        lambda **kw: ssi_scores(model, directions=dirs, **kw),
    ):
        reference = score(X=X)
        assert np.allclose(score(X=X, batch_size=7), reference, rtol=1e-12)
        assert np.allclose(score(X=sp.csr_matrix(X)), reference, rtol=1e-12)
    assert np.allclose(sld_scores(model, X, tangent_method="cg"), sld_scores(model, X), rtol=1e-6)
    assert np.allclose(
        ssi_scores(model, X, brute.Xv, brute.yv, tangent_method="cg"),
        ssi_scores(model, X, directions=dirs),
        rtol=1e-5,
    )


# --------------------------------------------------------------------------- bad input


class RandomForestWrapper:
    """A fitted non-gradient model, as the scikit-learn adapter would present one."""

    def __init__(self, X, y):
        from sklearn.ensemble import RandomForestClassifier

        self.estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
        self.task = "classification"

    def predict_proba(self, X):
        return self.estimator.predict_proba(X)


@pytest.mark.parametrize("name", ["sld", "sti", "ssi"])
def test_non_differentiable_model_gets_an_error_naming_supported_models(name):
    brute, Xc, _ = logistic_problem(n_cand=5)
    rf = RandomForestWrapper(brute.X, brute.y)
    with pytest.raises(NotDifferentiableError, match="LogisticRegression"):
        strategies.get(name).score(rf, Xc, X_val=brute.Xv, y_val=brute.yv)
    with pytest.raises(NotDifferentiableError, match="GLM"):
        sld_scores(rf.estimator, Xc)


def test_ssi_without_validation_split_says_so(ridge_at_s_star):
    _, model, _, Xc, _ = ridge_at_s_star
    with pytest.raises(ValueError, match="validation"):
        strategies.get("ssi").score(model, Xc)
    with pytest.raises(ValueError, match="validation"):
        ssi_scores(model, Xc)


def test_bad_variant_and_missing_labels(ridge_at_s_star):
    _, model, _, Xc, yc = ridge_at_s_star
    with pytest.raises(ValueError, match="variant"):
        strategies.get("sld").score(model, Xc, variant="expected")
    with pytest.raises(ValueError, match="y_pool"):
        strategies.get("sti").score(model, Xc, variant="labeled")
    with pytest.raises(ValueError, match="labels"):
        sld_scores(model, Xc, yc[:3])


def test_singular_hessian_errors_clearly_or_damps_to_finite_scores():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(4, 10)), rng.normal(size=4)  # fewer points than parameters
    model = LinearGLM(s=0.0).fit(X, y).with_s(-80.0)  # λ = e^-80: H is singular in floats
    pool = rng.normal(size=(6, 10))
    for score in (sld_scores, sti_scores):
        # Either a clear error, or the solver damps H itself and says so; never NaN scores.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                undamped = score(model, pool)
            except (ValueError, FloatingPointError) as exc:
                assert "damping" in str(exc)
            else:
                assert np.all(np.isfinite(undamped))
                assert any("damping" in str(w.message) for w in caught)
        damped = score(model, pool, damping=1e-6)
        assert np.all(np.isfinite(damped))


def test_mlp_scores_use_the_output_derivative_along_the_direction():
    """Forward-mode JVPs of a network against central differences of its output along v."""
    from alloop.models.mlp import MLP

    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, size=40)
    model = MLP(hidden=(6, 5), activation="tanh", s=-1.0, optimizer="lbfgs").fit(X, y)
    theta, v = model.theta_, torch.as_tensor(rng.normal(size=model.theta_.numel()))
    Xc, yc = rng.normal(size=(9, 3)), rng.integers(0, 3, size=9)
    h = 1e-5
    Xt = torch.as_tensor(Xc)
    with torch.no_grad():
        f = model.output(theta, Xt).numpy()
        fdot = ((model.output(theta + h * v, Xt) - model.output(theta - h * v, Xt)) / (2 * h)).numpy()
    p = softmax(f, axis=1)
    g_dot_v = (p * fdot).sum(axis=1) - fdot[np.arange(9), yc]
    assert relerr(sld_scores(model, Xc, yc, tangent=v), g_dot_v**2) < 1e-6
    centred = fdot - (p * fdot).sum(axis=1, keepdims=True)
    assert relerr(sld_scores(model, Xc, tangent=v), (p * centred**2).sum(axis=1)) < 1e-6


def test_ssi_at_a_search_bound_warns_and_floors_the_curvature():
    brute, Xc, _ = ridge_problem()
    model = fitted(brute, -3.0)
    with pytest.warns(RuntimeWarning, match="bound"):
        dirs = ssi_directions(model, brute.Xv, brute.yv, bounds=(-3.0, 3.0))
    assert dirs.curvature == max(abs(dirs.raw_curvature), 1e-6 * len(brute.yv))
    assert np.all(np.isfinite(ssi_scores(model, Xc, directions=dirs)))


def test_sti_with_an_sgdf_tangent_damps_only_the_solve_for_q():
    """A stored SGDF tangent takes no damping; q = (H + δI)⁻¹θ̂ against a dense solve."""
    from alloop.models.mlp import MLP

    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(30, 2)), rng.integers(0, 2, size=30)
    model = MLP(hidden=(4,), likelihood="bernoulli", s=1.0, optimizer="sgd", lr=0.05, epochs=30,
                batch_size=10, track_tangent=True).fit(X, y)  # H + 0.5·I is positive definite
    Xc = rng.normal(size=(7, 2))
    delta = 0.5
    tangent = model.tangent_
    hess = torch.func.hessian(lambda t: model.objective(t, model.X_train_, model.y_train_))
    H = hess(model.theta_) + delta * torch.eye(tangent.numel(), dtype=DTYPE)
    q = torch.linalg.solve(H, tangent / tangent.norm())
    scores = sti_scores(model, Xc, tangent_method="sgdf", damping=delta, solve_method="exact")
    assert relerr(scores, sld_scores(model, Xc, tangent=q)) < 1e-8


def test_solve_options_reach_the_linear_solver(ridge_at_s_star):
    brute, model, _, Xc, _ = ridge_at_s_star
    with pytest.warns(RuntimeWarning, match="stopped after 1 iterations"):
        capped = sti_scores(model, Xc, tangent_method="cg", solve_options={"max_iter": 1})
    assert not np.allclose(capped, sti_scores(model, Xc), rtol=1e-3)
    with pytest.warns(RuntimeWarning, match="stopped after 1 iterations"):
        strategies.get("ssi").score(
            model, Xc, X_val=brute.Xv, y_val=brute.yv, solve_method="cg",
            solve_options={"max_iter": 1},
        )
