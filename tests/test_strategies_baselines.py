"""Baseline strategies (uncertainty, committee, EGL, core-set) against brute force."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import integrate
from scipy.spatial.distance import cdist
from sklearn.base import clone as sk_clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

import strategies
from alloop.engine.select import select_batch
from alloop.models import LinearGLM, LogisticGLM, NotDifferentiableError, SoftmaxGLM
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import DTYPE
from strategies import check_compatible, get
from strategies.committee import bootstrap_indices
from strategies.egl import expected_gradient_length

BASELINES = (
    "least-confident", "uncertainty", "margin", "entropy",
    "vote-entropy", "kl-max", "max-std", "egl", "coreset",
)
CLASSIFICATION = ("least-confident", "uncertainty", "margin", "entropy", "vote-entropy", "kl-max")


# --------------------------------------------------------------------------- models and data
class SkModel:
    """The least a scikit-learn estimator needs to be an alloop model (no adapter exists yet)."""

    def __init__(self, estimator, task):
        self.estimator, self.task, self.classes_ = estimator, task, None

    def fit(self, X, y):
        self.estimator = sk_clone(self.estimator).fit(X, y)
        self.classes_ = getattr(self.estimator, "classes_", None)
        return self

    def predict(self, X):
        return self.estimator.predict(X)

    def predict_proba(self, X):
        return self.estimator.predict_proba(X)

    def clone(self):
        return SkModel(sk_clone(self.estimator), self.task)


class TinyMLP(DifferentiableModel):
    """One tanh hidden layer: a differentiable model that is not a GLM (no closed-form EGL)."""

    def __init__(self, likelihood, hidden=6, s=0.0, sigma2=1.0):
        super().__init__()
        self.likelihood, self.hidden, self.s, self.sigma2 = likelihood, hidden, s, sigma2

    def init_params(self, n_features, n_outputs):
        self.d, self.k = n_features, n_outputs
        size = n_features * self.hidden + self.hidden + self.hidden * n_outputs + n_outputs
        return 0.3 * torch.randn(size, generator=torch.Generator().manual_seed(0), dtype=DTYPE)

    def output(self, theta, X):
        d, h, k = self.d, self.hidden, self.k
        W1, b1 = theta[: d * h].view(d, h), theta[d * h : d * h + h]
        rest = theta[d * h + h :]
        W2, b2 = rest[: h * k].view(h, k), rest[h * k :]
        return torch.tanh(X @ W1 + b1) @ W2 + b2

    def _fit_params(self, theta0, X, y):
        theta = theta0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], max_iter=60, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = self.objective(theta, X, y)
            value.backward()
            return value

        opt.step(closure)
        return theta.detach()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    lab, pool = order[:120], order[120:420]
    return X[lab], y[lab], X[pool], y[pool]


@pytest.fixture(scope="module")
def small_digits():
    """Digits 0–3 pooled to 4×4 pixels: 16 features, 4 classes, for the committee refits."""
    X, y = load_digits(return_X_y=True)
    keep = y < 4
    X = X[keep].reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16) / 16.0
    y = y[keep]
    order = np.random.default_rng(3).permutation(len(y))
    lab, pool = order[:60], order[60:300]
    return X[lab], y[lab], X[pool], y[pool]


@pytest.fixture(scope="module")
def small_softmax(small_digits):
    return SoftmaxGLM(s=0.0).fit(*small_digits[:2])


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    order = np.random.default_rng(1).permutation(len(y))
    return X[order[:80]], y[order[:80]], X[order[80:280]]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    order = np.random.default_rng(2).permutation(len(y))
    return X[order[:60]], y[order[:60]], X[order[60:260]]


@pytest.fixture(scope="module")
def softmax(digits):
    X_lab, y_lab, _, _ = digits
    return SoftmaxGLM(s=0.0).fit(X_lab, y_lab)


@pytest.fixture(scope="module")
def ridge(diabetes):
    X_lab, y_lab, _ = diabetes
    return LinearGLM(s=0.0, sigma2=None).fit(X_lab, y_lab)


# --------------------------------------------------------------------------- registry
def test_every_baseline_is_registered_with_a_description():
    names = strategies.available()
    for name in BASELINES:
        assert name in names and names[name].strip()
    assert get("coreset").batch == "kcenter"
    assert get("uncertainty").scorer is get("least-confident").scorer
    assert "gradients" in get("egl").needs and "labeled" in get("vote-entropy").needs


# --------------------------------------------------------------------------- uncertainty
def _hand_uncertainty(P):
    top = -np.sort(-P, axis=1)
    logs = np.log(np.where(P > 0, P, 1.0))
    return {
        "least-confident": 1.0 - top[:, 0],
        "uncertainty": 1.0 - top[:, 0],
        "margin": -(top[:, 0] - top[:, 1]),
        "entropy": -(P * logs).sum(axis=1),
    }


@pytest.mark.parametrize("which", ["softmax", "sklearn", "logistic"])
def test_uncertainty_scores_equal_the_formulas(which, digits, cancer, softmax):
    if which == "softmax":
        model, X_pool = softmax, digits[2]
    elif which == "sklearn":
        model = SkModel(LogisticRegression(max_iter=2000), "classification").fit(*digits[:2])
        X_pool = digits[2]
    else:
        model, X_pool = LogisticGLM(s=1.0).fit(*cancer[:2]), cancer[2]
    expected = _hand_uncertainty(model.predict_proba(X_pool))
    for name, want in expected.items():
        np.testing.assert_allclose(get(name).score(model, X_pool), want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- EGL
def _brute_egl_classification(model, X, rows):
    """Σ_c p_c ‖∇θ ℓ(x, c)‖ with the gradient of the model's own loss by autograd."""
    out = []
    for i in rows:
        x = torch.as_tensor(X[i : i + 1], dtype=DTYPE)
        p = model.predict_proba(X[i : i + 1])[0]
        total = 0.0
        for c, label in enumerate(model.classes_):
            theta = model.theta_.clone().requires_grad_(True)
            loss = model.loss(theta, x, model.encode_y(np.array([label])))[0]
            (grad,) = torch.autograd.grad(loss, theta)
            total += p[c] * grad.norm().item()
        out.append(total)
    return np.array(out)


def _brute_egl_regression(model, X, rows):
    """∫ ‖∇θ ℓ(x, y)‖ N(y; f, σ²) dy by adaptive quadrature, the gradient by autograd."""
    sigma = math.sqrt(model.sigma2)
    out = []
    for i in rows:
        x = torch.as_tensor(X[i : i + 1], dtype=DTYPE)
        f = float(model.predict(X[i : i + 1])[0])

        def integrand(y, x=x, f=f):
            theta = model.theta_.clone().requires_grad_(True)
            loss = model.loss(theta, x, torch.tensor([y], dtype=DTYPE))[0]
            (grad,) = torch.autograd.grad(loss, theta)
            density = math.exp(-0.5 * ((y - f) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
            return grad.norm().item() * density

        lo = integrate.quad(integrand, f - 12 * sigma, f, epsabs=1e-12, epsrel=1e-10)[0]
        hi = integrate.quad(integrand, f, f + 12 * sigma, epsabs=1e-12, epsrel=1e-10)[0]
        out.append(lo + hi)
    return np.array(out)


ROWS = [0, 3, 17, 42, 99]


@pytest.mark.parametrize("kind", ["softmax-glm", "logistic-glm", "softmax-mlp", "logistic-mlp"])
def test_egl_classification_equals_brute_force(kind, digits, cancer, softmax):
    if kind == "softmax-glm":
        model, X_pool = softmax, digits[2]
    elif kind == "logistic-glm":
        model, X_pool = LogisticGLM(s=0.5).fit(*cancer[:2]), cancer[2]
    elif kind == "softmax-mlp":
        model, X_pool = TinyMLP("categorical").fit(*digits[:2]), digits[2]
    else:
        model, X_pool = TinyMLP("bernoulli").fit(*cancer[:2]), cancer[2]
    scores = get("egl").score(model, X_pool)
    np.testing.assert_allclose(scores[ROWS], _brute_egl_classification(model, X_pool, ROWS), rtol=1e-9)


@pytest.mark.parametrize("kind", ["linear-glm", "mlp"])
def test_egl_regression_equals_the_gaussian_expectation(kind, diabetes, ridge):
    X_lab, y_lab, X_pool = diabetes
    model = ridge if kind == "linear-glm" else TinyMLP("gaussian", sigma2=0.3).fit(X_lab, y_lab)
    assert model.sigma2 != 1.0  # σ must enter the formula
    scores = get("egl").score(model, X_pool)
    np.testing.assert_allclose(scores[ROWS], _brute_egl_regression(model, X_pool, ROWS), rtol=1e-7)


def test_egl_blocks_do_not_change_the_scores(small_digits, small_softmax):
    X_pool = small_digits[2][:80]
    mlp = TinyMLP("categorical").fit(*small_digits[:2])
    for model in (small_softmax, mlp):
        whole = expected_gradient_length(model, X_pool)
        np.testing.assert_allclose(expected_gradient_length(model, X_pool, block_rows=7), whole, rtol=1e-12)


def test_egl_refuses_a_model_without_gradients(digits):
    model = SkModel(LogisticRegression(max_iter=2000), "classification").fit(*digits[:2])
    with pytest.raises(NotDifferentiableError, match="differentiable"):
        check_compatible(get("egl"), model)
    with pytest.raises(NotDifferentiableError, match="LogisticRegression|SkModel"):
        get("egl").score(model, digits[2])


# --------------------------------------------------------------------------- committee
def test_bootstrap_indices_are_resamples_with_two_classes_each():
    y = np.array([0] * 11 + [1])  # a resample misses class 1 with probability (11/12)^12 ≈ 0.35
    samples = bootstrap_indices(12, 30, np.random.default_rng(4), y)
    assert len(samples) == 30
    for index in samples:
        assert index.shape == (12,) and index.min() >= 0 and index.max() < 12
        assert set(y[index]) == {0, 1}
    assert any(len(set(index.tolist())) < 12 for index in samples)  # drawn with replacement
    assert len({tuple(index) for index in samples}) == 30
    again = bootstrap_indices(12, 30, np.random.default_rng(4), y)
    assert all(np.array_equal(a, b) for a, b in zip(samples, again, strict=True))
    with pytest.raises(ValueError, match="single class"):
        bootstrap_indices(5, 3, np.random.default_rng(0), np.zeros(5))


def _hand_members(model, X, y, seed, n_members=5, classify=True):
    samples = bootstrap_indices(len(y), n_members, np.random.default_rng(seed), y if classify else None)
    members = []
    for index in samples:
        member = model.clone()
        if classify and isinstance(member, DifferentiableModel):
            member.fit(X[index], y[index], classes=np.unique(y))
        else:
            member.fit(X[index], y[index])
        members.append(member)
    return members


def _rare_class_labeled(small_digits):
    """A labeled set where class 3 appears once, so some bootstrap members miss it."""
    X_lab, y_lab, X_pool, _ = small_digits
    keep = np.flatnonzero(y_lab != 3)[:39].tolist() + [int(np.flatnonzero(y_lab == 3)[0])]
    return X_lab[keep], y_lab[keep], X_pool


@pytest.mark.parametrize("which", ["softmax", "sklearn"])
def test_vote_entropy_and_kl_max_equal_hand_computations(which, small_digits):
    X_lab, y_lab, X_pool = _rare_class_labeled(small_digits)
    base = SoftmaxGLM(s=0.0) if which == "softmax" else SkModel(
        LogisticRegression(max_iter=2000), "classification"
    )
    model = base.fit(X_lab, y_lab)
    seed = 5
    members = _hand_members(model, X_lab, y_lab, seed)
    classes = list(np.unique(y_lab))
    if which == "sklearn":  # the column alignment must actually be exercised
        assert any(len(member.classes_) < len(classes) for member in members)

    votes = [member.predict(X_pool) for member in members]
    hand_ve = []
    for j in range(X_pool.shape[0]):
        counts = Counter(int(v[j]) for v in votes)
        hand_ve.append(-sum((c / 5) * math.log(c / 5) for c in counts.values()))

    probas = []
    for member in members:
        P = member.predict_proba(X_pool)
        full = np.zeros((X_pool.shape[0], len(classes)))
        for col, label in enumerate(member.classes_):
            full[:, classes.index(label)] = P[:, col]
        probas.append(full)
    mean = sum(probas) / 5
    hand_kl = np.max(
        [[sum(p[j, c] * math.log(p[j, c] / mean[j, c]) for c in range(len(classes)) if p[j, c] > 0)
          for j in range(X_pool.shape[0])] for p in probas],
        axis=0,
    )

    context = dict(X_labeled=X_lab, y_labeled=y_lab)
    ve = get("vote-entropy").score(model, X_pool, rng=np.random.default_rng(seed), **context)
    kl = get("kl-max").score(model, X_pool, rng=np.random.default_rng(seed), **context)
    np.testing.assert_allclose(ve, hand_ve, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kl, hand_kl, rtol=1e-8, atol=1e-12)
    assert ve.max() > 0 and kl.max() > 0


@pytest.mark.parametrize("which", ["linear-glm", "sklearn-ridge"])
def test_max_std_equals_the_std_of_hand_fitted_members(which, diabetes):
    X_lab, y_lab, X_pool = diabetes
    model = LinearGLM(s=0.0) if which == "linear-glm" else SkModel(Ridge(alpha=1.0), "regression")
    model.fit(X_lab, y_lab)
    members = _hand_members(model, X_lab, y_lab, seed=7, n_members=6, classify=False)
    predictions = np.array([member.predict(X_pool) for member in members])
    hand = np.sqrt(((predictions - predictions.mean(axis=0)) ** 2).mean(axis=0))
    scores = get("max-std").score(
        model, X_pool, X_labeled=X_lab, y_labeled=y_lab, rng=np.random.default_rng(7), n_members=6
    )
    np.testing.assert_allclose(scores, hand, rtol=1e-9)
    assert scores.min() > 0


def test_committee_needs_labeled_data(small_digits, small_softmax):
    with pytest.raises(ValueError, match="X_labeled"):
        get("vote-entropy").score(small_softmax, small_digits[2], rng=np.random.default_rng(0))


# --------------------------------------------------------------------------- core-set
@pytest.mark.parametrize("sparse", [False, True])
def test_coreset_scores_are_nearest_labeled_distances(sparse, digits):
    X_lab, _, X_pool, _ = digits
    want = cdist(X_pool, X_lab).min(axis=1)
    if sparse:
        X_lab, X_pool = sp.csr_matrix(X_lab), sp.csr_matrix(X_pool)
    got = get("coreset").score(None, X_pool, X_labeled=X_lab)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7)
    assert np.all(get("coreset").score(None, X_pool) == 0.0)
    assert np.all(get("coreset").score(None, X_pool, X_labeled=X_lab[:0]) == 0.0)


def test_kcenter_batch_is_farthest_first_from_the_labeled_set(digits):
    X_lab, _, X_pool, _ = digits
    scores = get("coreset").score(None, X_pool, X_labeled=X_lab)
    chosen = select_batch(scores, 6, get("coreset").batch, X_pool=X_pool, X_labeled=X_lab)
    centers = X_lab
    for i in chosen:  # each pick is the pool item farthest from every center so far
        d = cdist(X_pool, centers).min(axis=1)
        assert d[i] == pytest.approx(d.max(), rel=1e-9)
        centers = np.vstack([centers, X_pool[i]])
    assert chosen[0] == np.argmax(scores)


def test_kcenter_batch_spreads_over_unlabeled_clusters():
    """Labeled: one digit class. Pool: four others. A batch of four takes one of each."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    means = {c: X[y == c].mean(axis=0) for c in range(10)}
    far = [1, 2, 3, 4]
    # tight clusters around the class means, so "spread" has one right answer
    rng = np.random.default_rng(0)
    X_pool = np.vstack([means[c] + 0.01 * rng.standard_normal((25, 64)) for c in far])
    X_lab = means[0] + 0.01 * rng.standard_normal((10, 64))
    scores = get("coreset").score(None, X_pool, X_labeled=X_lab)
    chosen = select_batch(scores, 4, "kcenter", X_pool=X_pool, X_labeled=X_lab)
    assert sorted(chosen // 25) == [0, 1, 2, 3]
    topk = select_batch(scores, 4, "topk")
    assert len(set((topk // 25).tolist())) < 4  # plain top-k would not spread


# --------------------------------------------------------------------------- common contract
def _context(X_lab, y_lab, seed=0):
    return dict(X_labeled=X_lab, y_labeled=y_lab, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("name", CLASSIFICATION + ("egl", "coreset"))
def test_classification_scores_shape_finite_deterministic_sparse(name, small_digits, small_softmax):
    X_lab, y_lab, X_pool, _ = small_digits
    softmax = small_softmax
    s = get(name)
    check_compatible(s, softmax)
    a = s.score(softmax, X_pool, **_context(X_lab, y_lab))
    b = s.score(softmax, X_pool, **_context(X_lab, y_lab))
    assert a.shape == (X_pool.shape[0],) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert np.ptp(a) > 0
    sparse = s.score(softmax, sp.csr_matrix(X_pool), **_context(sp.csr_matrix(X_lab), y_lab))
    np.testing.assert_allclose(sparse, a, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ["max-std", "egl", "coreset"])
def test_regression_scores_shape_finite_deterministic_sparse(name, diabetes, ridge):
    X_lab, y_lab, X_pool = diabetes
    s = get(name)
    check_compatible(s, ridge)
    a = s.score(ridge, X_pool, **_context(X_lab, y_lab))
    np.testing.assert_array_equal(a, s.score(ridge, X_pool, **_context(X_lab, y_lab)))
    assert a.shape == (X_pool.shape[0],) and np.all(np.isfinite(a)) and np.ptp(a) > 0
    sparse = s.score(ridge, sp.csr_matrix(X_pool), **_context(sp.csr_matrix(X_lab), y_lab))
    np.testing.assert_allclose(sparse, a, rtol=1e-7, atol=1e-9)


def test_committee_scores_depend_on_the_rng(small_digits, small_softmax):
    X_lab, y_lab, X_pool, _ = small_digits
    a = get("kl-max").score(small_softmax, X_pool, **_context(X_lab, y_lab, seed=0))
    b = get("kl-max").score(small_softmax, X_pool, **_context(X_lab, y_lab, seed=1))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_strategy_on_a_regression_model_is_a_clear_error(name, ridge):
    with pytest.raises(ValueError, match=f"{name!r} needs a classifier.*regression model"):
        check_compatible(get(name), ridge)


def test_max_std_on_a_classifier_is_a_clear_error(softmax):
    with pytest.raises(ValueError, match="'max-std' is for regression models"):
        check_compatible(get("max-std"), softmax)


def test_a_pool_of_100000_by_64_is_scored(digits, softmax):
    X_lab, y_lab, _, _ = digits
    model = softmax
    rng = np.random.default_rng(0)
    X, _ = load_digits(return_X_y=True)
    X_pool = X[rng.integers(0, len(X), 100_000)] / 16.0 + 0.01 * rng.standard_normal((100_000, 64))
    for name in CLASSIFICATION + ("egl", "coreset"):
        context = _context(X_lab, y_lab)
        if name in ("vote-entropy", "kl-max"):  # the refits are not what this test is about
            context.update(X_labeled=X_lab[:40], y_labeled=y_lab[:40], n_members=2)
        scores = get(name).score(model, X_pool, **context)
        assert scores.shape == (100_000,) and np.all(np.isfinite(scores))
    chosen = select_batch(scores, 10, "kcenter", X_pool=X_pool, X_labeled=X_lab)
    assert len(set(chosen.tolist())) == 10
    # the blocked EGL agrees with a single block on a slice
    np.testing.assert_allclose(
        expected_gradient_length(model, X_pool[:5000], block_rows=5000),
        get("egl").score(model, X_pool)[:5000],
        rtol=1e-12,
    )

