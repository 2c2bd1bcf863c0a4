"""VM / FVM (docs/math.md §8) and the noisy-label baselines against explicit dense computations."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from alloop.influence import (
    detection_auc,
    model_penalty,
    relabel_proposals,
    sam_step,
    self_influence,
    sgd_train,
    tracin_self_influence,
    training_loss,
    validation_influence,
    validation_minimum,
    validation_minimum_influence,
)
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.models.tensors import DTYPE


def noisy_problem(kind: str = "logistic", seed: int = 0, n: int = 120, n_val: int = 60, d: int = 3, noise: float = 0.2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_val, d))
    if kind == "logistic":
        y = (X @ np.linspace(2.0, -1.0, d) + 0.5 * rng.normal(size=n + n_val) > 0).astype(int)
        model, C = LogisticGLM(s=0.0), 2
    else:
        y = np.argmax(2 * X[:, :3] + 0.5 * rng.normal(size=(n + n_val, 3)), axis=1)
        model, C = SoftmaxGLM(s=0.0), 3
    y_train = y[:n].copy()
    flipped = rng.random(n) < noise
    y_train[flipped] = (y_train[flipped] + rng.integers(1, C, size=flipped.sum())) % C
    model.fit(X[:n], y_train)
    return model, X[:n], y_train, X[n:], y[n:], flipped, y[:n]


def dense_validation_influence(model, theta, X, y, X_val, y_val, damping=0.0):
    """Explicit: H̃ = torch.func.hessian of the mean validation loss, g̃ by autodiff, pinv."""
    Xv = torch.as_tensor(X_val, dtype=DTYPE)
    yv = model.encode_y(y_val)
    H = torch.func.hessian(lambda t: model.loss(t, Xv, yv).mean())(theta)
    H = H + damping * torch.eye(H.shape[0], dtype=DTYPE)
    Xt = torch.as_tensor(X, dtype=DTYPE)
    yt = model.encode_y(y)
    G = torch.stack([torch.func.grad(lambda t, i=i: model.loss(t, Xt[i : i + 1], yt[i : i + 1])[0])(theta) for i in range(len(Xt))])
    return torch.einsum("ip,pq,iq->i", G, torch.linalg.pinv(H, hermitian=True), G)


# ----------------------------------------------------------------------------- the SAM step
def test_sam_step_matches_its_formula():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=DTYPE)
    b = torch.tensor([1.0, -1.0], dtype=DTYPE)

    def grad(t):  # L = ½θᵀAθ − bᵀθ
        return A @ t - b

    theta = torch.tensor([0.5, 2.0], dtype=DTYPE)
    g = A @ theta - b
    expected = theta - 0.1 * (A @ (theta + 0.3 * g / g.norm()) - b)
    assert torch.allclose(sam_step(grad, theta, lr=0.1, radius=0.3), expected, atol=1e-15)
    assert torch.allclose(sam_step(grad, theta, lr=0.1, radius=0.0), theta - 0.1 * g, atol=1e-15)
    with pytest.raises(ValueError, match="radius"):
        sam_step(grad, theta, lr=0.1, radius=-1.0)


def test_fvm_continuation_takes_sam_steps_on_the_mean_validation_loss():
    model, _, _, Xv, yv, _, _ = noisy_problem(seed=1)
    Xt, yt = torch.as_tensor(Xv, dtype=DTYPE), model.encode_y(yv)
    grad = torch.func.grad(lambda t: model.loss(t, Xt, yt).mean())
    theta = model.theta_
    for _ in range(3):
        g = grad(theta)
        theta = theta - 0.4 * grad(theta + 0.05 * g / g.norm())
    got = validation_minimum(model, Xv, yv, sam_radius=0.05, lr=0.4, max_steps=3)
    assert got.flat and got.steps == 3
    assert torch.allclose(got.theta, theta, atol=1e-14)


def test_vm_reaches_the_validation_minimum():
    model, _, _, Xv, yv, _, _ = noisy_problem(seed=2)
    # 1e-8, not 1e-9: near ‖∇L‖ ≈ 1e-9 the decrease Armijo asks of L (≈ ‖∇L‖²/λ_max) is below
    # float64's resolution of L, so whether GD gets there depends on the BLAS summation order
    # (1.74e-9 after 5000 steps with one thread count, < 1e-9 with another)
    vm = validation_minimum(model, Xv, yv, tol=1e-8)
    Xt, yt = torch.as_tensor(Xv, dtype=DTYPE), model.encode_y(yv)
    assert torch.func.grad(lambda t: model.loss(t, Xt, yt).mean())(vm.theta).norm() <= 1e-8
    assert not vm.flat and vm.grad_norm <= 1e-8


# ----------------------------------------------------------------------------- scores
@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_fvm_scores_match_an_explicit_dense_computation(kind):
    model, X, y, Xv, yv, _, _ = noisy_problem(kind, seed=3)
    out = validation_minimum_influence(model, X, y, Xv, yv, flat=True, sam_radius=0.05, max_steps=200)
    # softmax without a penalty is flat along "add w to every class": pinv there.
    expected = dense_validation_influence(model, out.minimum.theta, X, y, Xv, yv)
    assert torch.allclose(out.scores, expected, rtol=1e-7)
    vm = validation_minimum_influence(model, X, y, Xv, yv, flat=False)
    assert torch.allclose(vm.scores, dense_validation_influence(model, vm.minimum.theta, X, y, Xv, yv), rtol=1e-7)


def test_explicit_damping_is_added_to_the_mean_validation_hessian():
    model, X, y, Xv, yv, _, _ = noisy_problem(seed=4)
    theta = validation_minimum(model, Xv, yv).theta
    got = validation_influence(model, theta, X, y, Xv, yv, damping=0.05)
    assert torch.allclose(got, dense_validation_influence(model, theta, X, y, Xv, yv, damping=0.05), rtol=1e-7)


def test_relabel_proposals_minimise_the_explicit_influence():
    model, X, y, Xv, yv, flipped, clean = noisy_problem("softmax", seed=5)
    theta = validation_minimum(model, Xv, yv).theta
    proposals, influence = relabel_proposals(model, theta, X[:20], Xv, yv)
    explicit = torch.stack(
        [dense_validation_influence(model, theta, X[:20], np.full(20, c), Xv, yv) for c in model.classes_], dim=1
    )
    assert torch.allclose(influence, explicit, rtol=1e-7)
    assert np.array_equal(proposals, model.classes_[explicit.argmin(dim=1).numpy()])


def test_baselines_against_explicit_formulas():
    model, X, y, _, _, _, _ = noisy_problem(seed=6)
    Xt, yt = torch.as_tensor(X, dtype=DTYPE), model.encode_y(y)
    theta = model.theta_
    H = torch.func.hessian(lambda t: model.objective(t, Xt, yt))(theta)
    G = torch.stack([torch.func.grad(lambda t, i=i: model.loss(t, Xt[i : i + 1], yt[i : i + 1])[0])(theta) for i in range(len(Xt))])
    assert torch.allclose(self_influence(model, X, y), torch.einsum("ip,pq,iq->i", G, torch.linalg.inv(H), G), rtol=1e-9)
    assert torch.allclose(training_loss(model, X, y), model.loss(theta, Xt, yt), atol=0)

    run = sgd_train(model, torch.zeros_like(theta), Xt, yt, lr=lambda t: 0.5 / (1 + t / 50), epochs=3, batch_size=40,
                    penalty=model_penalty(model, len(X)), checkpoint_every=3)
    assert sorted(run.checkpoints) == [0, 3, 6, 9]
    expected = torch.zeros(len(X), dtype=DTYPE)
    for c in (3, 6, 9):
        Gc = torch.stack([torch.func.grad(lambda t, i=i: model.loss(t, Xt[i : i + 1], yt[i : i + 1])[0])(run.checkpoints[c]) for i in range(len(Xt))])
        expected += run.lrs[c - 1] * (Gc**2).sum(1)
    assert torch.allclose(tracin_self_influence(run, model, Xt, yt), expected, rtol=1e-12)


def test_detection_auc_counts_ordered_pairs():
    scores = np.array([0.9, 0.1, 0.4, 0.4, 0.8, 0.2])
    corrupted = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    pairs = [(s, t) for s, t in itertools.product(scores[corrupted], scores[~corrupted])]
    expected = np.mean([1.0 if s > t else 0.5 if s == t else 0.0 for s, t in pairs])
    assert detection_auc(scores, corrupted) == pytest.approx(expected)
    with pytest.raises(ValueError, match="both corrupted and clean"):
        detection_auc(scores, np.zeros(6, dtype=bool))


def test_fvm_flags_flipped_labels_on_an_easy_problem():
    model, X, y, Xv, yv, flipped, _ = noisy_problem(seed=7, n=200, n_val=100)
    out = validation_minimum_influence(model, X, y, Xv, yv, flat=True, max_steps=200)
    assert detection_auc(out.scores, flipped) > 0.9


# ----------------------------------------------------------------------------- bad input
def test_validation_set_with_one_class_is_refused():
    model, X, y, Xv, yv, _, _ = noisy_problem(seed=8)
    one = np.ones_like(yv)
    with pytest.raises(ValueError, match="single class"):
        validation_minimum(model, Xv, one)
    with pytest.raises(ValueError, match="single class"):
        validation_influence(model, model.theta_, X, y, Xv, one)


def test_training_labels_outside_the_classes_are_refused():
    model, X, y, Xv, yv, _, _ = noisy_problem(seed=9)
    bad = y.copy()
    bad[3] = 5
    with pytest.raises(ValueError, match=r"training labels.*\[5\]"):
        validation_influence(model, model.theta_, X, bad, Xv, yv)


def test_singular_validation_hessian_is_damped_with_a_warning():
    """A feature that is zero on every validation point leaves H̃_val singular without a penalty."""
    model, X, y, Xv, yv, _, _ = noisy_problem(seed=10)
    Xv = Xv.copy()
    Xv[:, 2] = 0.0
    theta = validation_minimum(model, Xv, yv).theta
    with pytest.warns(RuntimeWarning, match="singular"):
        scores = validation_influence(model, theta, X, y, Xv, yv)
    assert torch.all(torch.isfinite(scores)) and torch.all(scores > 0)
    # An explicit damping is used as given, silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        damped = validation_influence(model, theta, X, y, Xv, yv, damping=1e-3)
    assert torch.allclose(damped, dense_validation_influence(model, theta, X, y, Xv, yv, damping=1e-3), rtol=1e-9)
    # A penalty on the validation objective also makes it regular.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.all(torch.isfinite(validation_influence(model, theta, X, y, Xv, yv, s=0.0)))
