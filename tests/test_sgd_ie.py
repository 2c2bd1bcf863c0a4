"""SGD-IE and ACC-SGD-IE (docs/math.md §7) against real counterfactual SGD and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import torch

from alloop.influence import (
    counterfactual_sgd,
    influence_metrics,
    jaccard_top,
    kendall_tau,
    loo_deviation,
    loo_loss_change,
    loss_change,
    model_penalty,
    rmse,
    sgd_ie_backward,
    sgd_influence,
    sgd_train,
    validation_gradient,
    validation_hessian,
)
from alloop.models import LinearGLM, LogisticGLM
from alloop.models.tensors import DTYPE


def logistic_loss(theta, X, y):
    """Plain-function logistic loss (intercept last): exercises the autodiff path."""
    f = X @ theta[:-1] + theta[-1]
    return torch.nn.functional.softplus(f) - y * f


def squared_loss(theta, X, y):
    return 0.5 * (X @ theta[:-1] + theta[-1] - y) ** 2


def ridge(theta):
    return 0.01 * 0.5 * (theta[:-1] ** 2).sum()


def problem(kind: str, seed: int = 0, n: int = 30, n_val: int = 30, d: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_val, d))
    score = X @ np.linspace(1.0, -0.5, d) + 0.7 * rng.normal(size=n + n_val)
    y = (score > 0).astype(float) if kind == "logistic" else score
    Xt = torch.as_tensor(X, dtype=DTYPE)
    yt = torch.as_tensor(y, dtype=DTYPE)
    return Xt[:n], yt[:n], Xt[n:], yt[n:]


def weighted_sgd(loss, trajectory, X, y, j, weight, penalty):
    """Brute force: replay the recorded batches by hand with sample j's loss weighted by ``weight``,
    each step divided by the full |B_t|."""
    theta = trajectory.theta0.clone()
    for t, b in enumerate(trajectory.batches):
        w = torch.ones(b.numel(), dtype=DTYPE)
        w[b == j] = weight

        def step_objective(th, b=b, w=w):
            return (w * loss(th, X[b], y[b])).sum() / b.numel() + penalty(th)

        theta = theta - trajectory.lrs[t] * torch.func.grad(step_objective)(theta)
    return theta


# ----------------------------------------------------------------------------- conventions
def test_counterfactual_step_keeps_the_full_batch_normalization():
    """One step with j left out: θ0 − η[(1/|B|) Σ_{i≠j} g_i + ∇R], not 1/(|B| − 1)."""
    X, y, _, _ = problem("logistic", n=8)
    theta0 = torch.tensor([0.3, -0.2, 0.1, 0.05], dtype=DTYPE)
    run = sgd_train(logistic_loss, theta0, X, y, lr=0.7, epochs=1, batch_size=8, penalty=ridge)
    G = torch.stack([torch.func.grad(lambda t, i=i: logistic_loss(t, X[i : i + 1], y[i : i + 1])[0])(theta0) for i in range(8)])
    reg = torch.func.grad(ridge)(theta0)
    theta_loo = counterfactual_sgd(run, logistic_loss, X, y, penalty=ridge)
    for j in range(8):
        keep = [i for i in range(8) if i != j]
        expected = theta0 - 0.7 * (G[keep].sum(0) / 8 + reg)
        assert torch.allclose(theta_loo[j], expected, atol=1e-14)
        assert not torch.allclose(theta_loo[j], theta0 - 0.7 * (G[keep].sum(0) / 7 + reg), atol=1e-6)
    # Both estimators are exact after one step: δ_1(j) = (η/|B|) g_j(θ0).
    for estimator in ("sgd", "acc"):
        delta = sgd_influence(run, logistic_loss, X, y, estimator=estimator, penalty=ridge)
        assert torch.allclose(delta, 0.7 / 8 * G, atol=1e-14)


def test_training_is_reproducible_from_the_recorded_batches():
    X, y, _, _ = problem("logistic")
    theta0 = torch.zeros(4, dtype=DTYPE)
    run = sgd_train(logistic_loss, theta0, X, y, lr=0.5, epochs=3, batch_size=7, penalty=ridge, seed=3)
    assert run.n_steps == 3 * 5 and [b.numel() for b in run.batches[:5]] == [7, 7, 7, 7, 2]
    assert all(torch.equal(torch.sort(torch.cat(run.batches[5 * e : 5 * e + 5])).values, torch.arange(30)) for e in range(3))
    assert torch.allclose(weighted_sgd(logistic_loss, run, X, y, 0, 1.0, ridge), run.theta_final, atol=1e-13)
    again = sgd_train(logistic_loss, theta0, X, y, lr=0.5, epochs=3, batch_size=7, penalty=ridge, seed=3)
    assert torch.equal(again.theta_final, run.theta_final)


# ----------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("path", ["glm", "autodiff"])
def test_acc_sgd_ie_is_exact_for_least_squares(path):
    """With a quadratic loss the Taylor step is exact, so ACC-SGD-IE reproduces leave-one-out
    SGD to rounding; SGD-IE, which drops the H_j δ term, does not."""
    X, y, _, _ = problem("linear")
    if path == "glm":
        model = LinearGLM(s=np.log(0.3)).fit(X.numpy(), y.numpy())
        loss, penalty = model, model_penalty(model, X.shape[0])
        theta0 = torch.zeros_like(model.theta_)
    else:
        loss, penalty, theta0 = squared_loss, ridge, torch.zeros(4, dtype=DTYPE)
    run = sgd_train(loss, theta0, X, y, lr=0.2, epochs=10, batch_size=5, penalty=penalty, seed=1)
    truth = loo_deviation(run, loss, X, y, penalty=penalty)
    acc = sgd_influence(run, loss, X, y, estimator="acc", penalty=penalty)
    sgd = sgd_influence(run, loss, X, y, estimator="sgd", penalty=penalty)
    assert torch.allclose(acc, truth, atol=1e-12 * truth.abs().max() + 1e-15)
    assert rmse(sgd, truth) > 1e-3 * rmse(truth, torch.zeros_like(truth))


@pytest.mark.parametrize("path", ["glm", "autodiff"])
def test_sgd_ie_is_the_derivative_in_the_sample_weight(path):
    """SGD-IE is the linearisation at the full run: δ(j) = −∂θ_T/∂w_j (w_j: j's loss weight),
    checked against central differences of hand-replayed weighted SGD."""
    X, y, _, _ = problem("logistic", n=20)
    if path == "glm":
        model = LogisticGLM(s=0.0).fit(X.numpy(), y.numpy().astype(int))
        loss, yy, penalty = model, model.encode_y(y.numpy().astype(int)), model_penalty(model, 20)
        theta0 = torch.zeros_like(model.theta_)
    else:
        loss, yy, penalty, theta0 = logistic_loss, y, ridge, torch.zeros(4, dtype=DTYPE)
    run = sgd_train(loss, theta0, X, yy, lr=0.8, epochs=4, batch_size=4, penalty=penalty, seed=2)
    delta = sgd_influence(run, loss, X, yy, estimator="sgd", penalty=penalty)
    fn = loss.loss if path == "glm" else loss
    h = 1e-5
    for j in (0, 7, 13):
        up = weighted_sgd(fn, run, X, yy, j, 1.0 + h, penalty)
        down = weighted_sgd(fn, run, X, yy, j, 1.0 - h, penalty)
        assert torch.allclose(delta[j], -(up - down) / (2 * h), atol=1e-8)


def test_acc_beats_sgd_ie_against_leave_one_out_retraining():
    """Many epochs of convex logistic SGD against real leave-one-out SGD: ACC-SGD-IE's RMSE is
    strictly smaller than SGD-IE's, and both rank the samples' ΔV well.

    ΔV is compared through its second-order expansion in δ: with N = 60 one sample moves θ_T
    enough that ½δᵀ∇²Vδ is as large as the estimators' errors (the plain ∇V·δ of both
    estimators is then equally far from the true ΔV, which would hide the difference).
    """
    X, y, Xv, yv = problem("logistic", seed=2, n=60, n_val=60, d=4)
    model = LogisticGLM(s=0.0).fit(X.numpy(), y.numpy().astype(int))
    penalty = model_penalty(model, 60)
    run = sgd_train(model, torch.zeros_like(model.theta_), X, y, lr=1.0, epochs=40, batch_size=10, penalty=penalty, seed=2)
    true_delta = loo_deviation(run, model, X, y, penalty=penalty)
    true_dv = loo_loss_change(run, model, X, y, Xv, yv, penalty=penalty)
    grad_v = validation_gradient(model, run.theta_final, Xv, yv)
    hess_v = torch.func.hessian(lambda t: model.loss(t, Xv, yv).mean())(run.theta_final)
    assert torch.allclose(validation_hessian(model, run.theta_final, Xv, yv), hess_v, atol=1e-14)
    acc = sgd_influence(run, model, X, y, estimator="acc", penalty=penalty)
    sgd = sgd_influence(run, model, X, y, estimator="sgd", penalty=penalty)
    assert rmse(acc, true_delta) < 0.7 * rmse(sgd, true_delta)
    assert rmse(loss_change(acc, grad_v, hess_v), true_dv) < 0.5 * rmse(loss_change(sgd, grad_v, hess_v), true_dv)
    assert kendall_tau(loss_change(acc, grad_v), true_dv) >= 0.9
    assert kendall_tau(loss_change(sgd, grad_v), true_dv) >= 0.9
    assert kendall_tau(loss_change(acc, grad_v, hess_v), true_dv) >= 0.98
    # Hara's single backward vector gives SGD-IE's ΔV for every sample.
    backward = sgd_ie_backward(run, model, X, y, grad_v, penalty=penalty)
    assert torch.allclose(backward, loss_change(sgd, grad_v), atol=1e-14)
    # Tracking a subset gives the same rows.
    part = sgd_influence(run, model, X, y, estimator="acc", penalty=penalty, samples=[5, 1, 40])
    assert torch.allclose(part, acc[[5, 1, 40]], atol=1e-15)


# ----------------------------------------------------------------------------- metrics
def test_metrics_against_hand_computation():
    rng = np.random.default_rng(0)
    est, truth = rng.normal(size=20), rng.normal(size=20)
    assert rmse(est, truth) == pytest.approx(np.sqrt(np.mean((est - truth) ** 2)))
    concordant = sum(np.sign((est[i] - est[j]) * (truth[i] - truth[j])) for i, j in itertools.combinations(range(20), 2))
    assert kendall_tau(est, truth) == pytest.approx(concordant / 190)
    top_e, top_t = set(np.argsort(-est)[:6]), set(np.argsort(-truth)[:6])
    assert jaccard_top(est, truth, 0.3) == pytest.approx(len(top_e & top_t) / len(top_e | top_t))
    metrics = influence_metrics(est, truth)
    assert set(metrics) == {"rmse", "kendall_tau", "jaccard@10%", "jaccard@30%", "jaccard@50%", "jaccard@70%"}
    assert metrics["kendall_tau"] == pytest.approx(scipy.stats.kendalltau(est, truth).statistic)
    assert influence_metrics(truth, truth)["jaccard@10%"] == 1.0
    with pytest.raises(ValueError, match="fraction"):
        jaccard_top(est, truth, 0.0)
    with pytest.raises(ValueError, match="values"):
        rmse(est, truth[:-1])


# ----------------------------------------------------------------------------- bad input
def test_run_without_batch_order_is_refused():
    X, y, _, _ = problem("logistic")
    run = sgd_train(logistic_loss, torch.zeros(4, dtype=DTYPE), X, y, lr=0.5, epochs=2, batch_size=5, record_batches=False)
    assert run.batches is None
    for call in (
        lambda: sgd_influence(run, logistic_loss, X, y),
        lambda: counterfactual_sgd(run, logistic_loss, X, y),
        lambda: sgd_ie_backward(run, logistic_loss, X, y, torch.zeros(4, dtype=DTYPE)),
    ):
        with pytest.raises(ValueError, match="did not record its batch order"):
            call()


def test_replay_with_another_loss_or_data_is_refused():
    X, y, _, _ = problem("logistic")
    run = sgd_train(logistic_loss, torch.zeros(4, dtype=DTYPE), X, y, lr=0.5, epochs=2, batch_size=5, penalty=ridge)
    with pytest.raises(ValueError, match="did not reach the recorded"):
        sgd_influence(run, logistic_loss, X, y)  # penalty forgotten
    with pytest.raises(ValueError, match="recorded on 30 samples"):
        sgd_influence(run, logistic_loss, X[:20], y[:20], penalty=ridge)
    with pytest.raises(ValueError, match="unknown estimator"):
        sgd_influence(run, logistic_loss, X, y, estimator="hara", penalty=ridge)
    with pytest.raises(ValueError, match="sample indices"):
        sgd_influence(run, logistic_loss, X, y, penalty=ridge, samples=[30])
