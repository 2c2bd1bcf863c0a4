"""IP-adding (docs/math.md §6) against brute force: refits with a candidate up-weighted by ±ε.

Convention under test: alloop's objective is the summed loss F = Σℓ + e^s C, so "adding z_i"
is giving it weight 1 in F, and the predicted change is the derivative d/dε at ε = 0 of the
validation predictions of argmin F + ε ℓ(z_i) — the paper's −(1/N) H_mean⁻¹ g with H_mean = H_F/N.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import spearmanr

import strategies
from alloop.influence import (
    aligned_predictions,
    expected_scores,
    ip_adding_scores,
    prediction_changes,
    select_subset,
    subset_mask,
)
from alloop.models import LinearGLM, LogisticGLM, NotDifferentiableError, SoftmaxGLM
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import DTYPE

EPS = 1e-4


# ----------------------------------------------------------------------------- brute force
def refit_with_weight(model: DifferentiableModel, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """argmin_θ F(θ) + ε ℓ((x, y); θ) by chord-Newton steps with a dense autodiff Hessian.

    It starts at θ*, O(ε) from the answer; with the Hessian fixed there each step shrinks the
    error by a factor O(ε), so four steps reach rounding level.
    """
    X, Y = model.X_train_, model.y_train_

    def objective(t):
        return model.objective(t, X, Y) + eps * model.loss(t, x, y).sum()

    theta = model.theta_.clone()
    H_pinv = torch.linalg.pinv(torch.func.hessian(objective)(theta))
    for _ in range(4):
        theta = theta - H_pinv @ torch.func.grad(objective)(theta)
    assert torch.func.grad(objective)(theta).norm() < 1e-11
    return theta


def aligned_f(model, theta, X_val, y_val, runner_up):
    """The aligned prediction of docs/math.md §6 at θ, with the runner-up class held fixed."""
    out = model.output(theta, torch.as_tensor(X_val, dtype=DTYPE))
    if model.likelihood == "bernoulli":
        return torch.sigmoid(out[:, 0])
    if model.likelihood == "gaussian":
        return out[:, 0]
    P = torch.softmax(out, dim=1)
    idx = torch.arange(len(y_val))
    return 0.5 * (1 + P[idx, torch.as_tensor(y_val)] - P[idx, runner_up])


def finite_difference_changes(model, X_cand, y_cand, X_val, y_val):
    """Δf_ij by central differences of weighted refits, shape (n_cand, n_val)."""
    runner_up = None
    if model.likelihood == "categorical":
        P = torch.as_tensor(model.predict_proba(X_val))
        P[torch.arange(len(y_val)), torch.as_tensor(y_val)] = -1.0
        runner_up = P.argmax(dim=1)
    rows = []
    for i in range(len(X_cand)):
        x = torch.as_tensor(X_cand[i : i + 1], dtype=DTYPE)
        y = model.encode_y(np.asarray(y_cand[i : i + 1]))
        up = aligned_f(model, refit_with_weight(model, x, y, EPS), X_val, y_val, runner_up)
        down = aligned_f(model, refit_with_weight(model, x, y, -EPS), X_val, y_val, runner_up)
        rows.append((up - down) / (2 * EPS))
    return torch.stack(rows)


def make_problem(kind: str, seed: int = 0, n: int = 60, n_cand: int = 10, n_val: int = 30, d: int = 4):
    rng = np.random.default_rng(seed)
    m = n + n_cand + n_val
    X = rng.normal(size=(m, d))
    if kind == "logistic":
        y = (X @ np.array([1.0, -1.0, 0.5, 0.0][:d]) + 0.8 * rng.normal(size=m) > 0).astype(int)
        model = LogisticGLM(s=0.0)
    elif kind == "softmax":
        y = np.argmax(X[:, :3] + 0.8 * rng.normal(size=(m, 3)), axis=1)
        model = SoftmaxGLM(s=0.0)
    else:
        y = X @ rng.normal(size=d) + 0.5 * rng.normal(size=m)
        model = LinearGLM(s=0.0)
    model.fit(X[:n], y[:n])
    c, v = slice(n, n + n_cand), slice(n + n_cand, m)
    return model, X[c], y[c], X[v], y[v]


# ----------------------------------------------------------------------------- Δf and scores
@pytest.mark.parametrize("kind", ["logistic", "softmax", "linear"])
def test_prediction_changes_match_weighted_refits(kind):
    model, Xc, yc, Xv, yv = make_problem(kind)
    brute = finite_difference_changes(model, Xc, yc, Xv, yv)
    got = prediction_changes(model, Xc, yc, Xv, yv)
    assert got.shape == (len(Xc), len(Xv))
    scale = brute.abs().max()
    assert torch.allclose(got, brute, atol=1e-6 * scale, rtol=1e-5)

    direction = torch.sign(aligned_predictions(model, Xv, yv).target - aligned_f(
        model, model.theta_, Xv, yv, None if kind != "softmax" else
        torch.as_tensor(model.predict_proba(Xv)).scatter(1, torch.as_tensor(yv).view(-1, 1), -1.0).argmax(1)
    ))
    brute_scores = (brute * direction).sum(dim=1)
    scores = ip_adding_scores(model, Xc, yc, Xv, yv)
    assert spearmanr(scores, brute_scores).statistic >= 0.99
    assert torch.allclose(scores, brute_scores, atol=1e-6 * brute_scores.abs().max())


def test_residual_weights_match_refits():
    """weights='residual': Σ_j |τ_j − f_j| sign(τ_j − f_j) Δf_ij = Σ_j (τ_j − f_j) Δf_ij."""
    model, Xc, yc, Xv, yv = make_problem("logistic", seed=1)
    brute = finite_difference_changes(model, Xc, yc, Xv, yv)
    p = torch.as_tensor(model.predict_proba(Xv)[:, 1])
    brute_scores = brute @ (torch.as_tensor(yv, dtype=DTYPE) - p)
    scores = ip_adding_scores(model, Xc, yc, Xv, yv, weights="residual")
    assert torch.allclose(scores, brute_scores, atol=1e-6 * brute_scores.abs().max())


def test_generic_model_path_matches_refits():
    """A non-GLM DifferentiableModel goes through autodiff gradients and Jacobians."""

    class AutodiffLogistic(DifferentiableModel):
        likelihood = "bernoulli"

        def __init__(self, s: float = 0.0) -> None:
            super().__init__()
            self.s = s

        def init_params(self, n_features, n_outputs):
            return torch.zeros(n_features + 1, dtype=DTYPE)

        def output(self, theta, X):
            return (X @ theta[:-1] + theta[-1]).unsqueeze(1)

        def penalty_mask(self):
            mask = torch.ones_like(self.theta_)
            mask[-1] = 0.0
            return mask

        def _fit_params(self, theta0, X, y):
            theta = theta0
            for _ in range(50):
                f = lambda t: self.objective(t, X, y)  # noqa: E731
                theta = theta - torch.linalg.solve(torch.func.hessian(f)(theta), torch.func.grad(f)(theta))
            return theta

    base, Xc, yc, Xv, yv = make_problem("logistic", seed=2)
    model = AutodiffLogistic(s=0.0).fit(base.X_train_.numpy(), base.classes_[base.y_train_.long().numpy()])
    brute = finite_difference_changes(model, Xc, yc, Xv, yv)
    got = prediction_changes(model, Xc, yc, Xv, yv)
    assert torch.allclose(got, brute, atol=1e-6 * brute.abs().max(), rtol=1e-5)


def test_two_class_softmax_agrees_with_logistic():
    """f_j = P(true class) for K = 2, so a softmax (λ doubled) and a logistic model agree."""
    model, Xc, yc, Xv, yv = make_problem("logistic", seed=3)
    soft = SoftmaxGLM(s=np.log(2.0)).fit(model.X_train_.numpy(), model.y_train_.long().numpy())
    assert np.allclose(soft.predict_proba(Xv), model.predict_proba(Xv), atol=1e-8)
    a = ip_adding_scores(model, Xc, yc, Xv, yv)
    b = ip_adding_scores(soft, Xc, yc, Xv, yv)
    assert torch.allclose(a, b, atol=1e-8)


def test_sparse_candidates_and_cg_solver_agree_with_dense():
    model, Xc, yc, Xv, yv = make_problem("softmax", seed=4)
    dense = ip_adding_scores(model, Xc, yc, Xv, yv)
    assert torch.allclose(ip_adding_scores(model, sp.csr_matrix(Xc), yc, Xv, yv), dense, atol=1e-12)
    assert torch.allclose(ip_adding_scores(model, Xc, yc, Xv, yv, method="cg"), dense, atol=1e-8)


# ----------------------------------------------------------------------------- unlabeled candidates
def test_expected_scores_enumerate_labels():
    model, Xc, _, Xv, yv = make_problem("softmax", seed=5)
    P = torch.as_tensor(model.predict_proba(Xc))
    per_label = torch.stack(
        [ip_adding_scores(model, Xc, np.full(len(Xc), c), Xv, yv) for c in model.classes_], dim=1
    )
    assert torch.allclose(expected_scores(model, Xc, Xv, yv), (P * per_label.clamp(min=0)).sum(1), atol=1e-12)
    assert torch.allclose(expected_scores(model, Xc, Xv, yv, reduction="abs"), (P * per_label.abs()).sum(1), atol=1e-12)
    mean = expected_scores(model, Xc, Xv, yv, reduction="mean")
    assert torch.allclose(mean, (P * per_label).sum(1), atol=1e-12)
    # The score-function identity E_y[∇ log p(y|x)] = 0 makes the plain mean vanish.
    assert mean.abs().max() <= 1e-10 * per_label.abs().max()
    # ... hence E[max(s, 0)] = ½ E|s|.
    assert torch.allclose(
        expected_scores(model, Xc, Xv, yv), 0.5 * expected_scores(model, Xc, Xv, yv, reduction="abs"), atol=1e-12
    )


def test_influence_strategy_is_registered_and_scores_the_pool():
    model, Xc, _, Xv, yv = make_problem("logistic", seed=6)
    item = strategies.get("influence")
    assert {"gradients", "validation"} <= set(item.needs)
    scores = item.score(model, Xc, X_val=Xv, y_val=yv)
    assert scores.shape == (len(Xc),)
    assert np.allclose(scores, expected_scores(model, Xc, Xv, yv).numpy())
    with pytest.raises(ValueError, match="validation split"):
        item.score(model, Xc)


# ----------------------------------------------------------------------------- selection
def test_method1_and_topk_selections():
    model, Xc, yc, Xv, yv = make_problem("logistic", seed=7)
    scores = ip_adding_scores(model, Xc, yc, Xv, yv).numpy()
    ids = np.array([f"c{i}" for i in range(len(Xc))])

    method1 = select_subset(model, Xc, yc, Xv, yv, ids=ids)
    assert method1.mask.shape == (len(Xc),) and method1.mask.dtype == bool
    assert np.array_equal(method1.mask, scores > 0)
    assert 0 < method1.mask.sum() < len(Xc)  # the problem has helpful and harmful candidates
    assert np.all(np.diff(scores[method1.index]) <= 0)
    assert np.array_equal(method1.ids, ids[method1.index])

    top = select_subset(model, Xc, yc, Xv, yv, budget=4)
    assert top.mask.sum() == 4 and top.index.shape == (4,)
    assert np.array_equal(np.sort(top.index), np.sort(np.argsort(-scores)[:4]))
    assert np.array_equal(top.ids, top.index)

    assert subset_mask(scores, 0.2).sum() == round(0.2 * len(Xc))
    assert subset_mask(scores, 1.0).all()
    assert subset_mask(scores, 100).all()
    for bad in (-1, 0.0, 1.5):
        with pytest.raises(ValueError, match="budget"):
            subset_mask(scores, bad)


# ----------------------------------------------------------------------------- bad input
def test_validation_set_with_one_class_is_refused():
    model, Xc, yc, Xv, yv = make_problem("logistic", seed=8)
    one = np.zeros_like(yv)
    with pytest.raises(ValueError, match="single class"):
        ip_adding_scores(model, Xc, yc, Xv, one)
    with pytest.raises(ValueError, match="single class"):
        expected_scores(model, Xc, Xv, one)


def test_candidates_with_unseen_classes_are_refused():
    model, Xc, yc, Xv, yv = make_problem("logistic", seed=9)
    bad = yc.copy()
    bad[0] = 7
    with pytest.raises(ValueError, match=r"candidate labels.*\[7\]"):
        ip_adding_scores(model, Xc, bad, Xv, yv)
    with pytest.raises(ValueError, match="candidate labels"):
        ip_adding_scores(model, Xc, yc[:-1], Xv, yv)


def test_unfitted_or_non_differentiable_models_are_refused():
    _, Xc, yc, Xv, yv = make_problem("logistic", seed=10)
    with pytest.raises(RuntimeError, match="not fitted"):
        ip_adding_scores(LogisticGLM(), Xc, yc, Xv, yv)
    with pytest.raises(NotDifferentiableError):
        ip_adding_scores(object(), Xc, yc, Xv, yv)
    regression, Xc, _, Xv, yv = make_problem("linear", seed=10)
    with pytest.raises(ValueError, match="classifier"):
        expected_scores(regression, Xc, Xv, yv)
