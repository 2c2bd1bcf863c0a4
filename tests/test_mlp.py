"""TorchModel / MLP: the flat-parameter view of a torch module, its training and its penalty,
checked against the module itself, the GLMs' Newton solutions and explicit autograd."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.preprocessing import StandardScaler
from torch import nn

from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP, TorchModel, mlp_module


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These problems are tiny: a second thread only adds contention on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@functools.cache
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:300], y[:300]


def grad_objective(model, theta):
    return torch.func.grad(lambda t: model.objective(t, model.X_train_, model.y_train_))(theta)


# ---------------------------------------------------------------------------- parameter view
def test_output_equals_the_module_loaded_with_theta():
    X, y = iris()
    model = MLP(hidden=(5, 4), activation="softplus", optimizer="adam", epochs=2).fit(X, y)
    module = mlp_module(4, 3, hidden=(5, 4), activation="softplus").double()
    params = model.params(model.theta_)
    module.load_state_dict({name: p.clone() for name, p in params.items()})
    Xt = torch.as_tensor(X)
    with torch.no_grad():
        assert torch.allclose(model.output(model.theta_, Xt), module(Xt), rtol=0, atol=1e-14)
    # the named parameters are views of θ, laid out one after another
    assert sum(p.numel() for p in params.values()) == model.theta_.numel()
    for name, p in params.items():
        assert p.untyped_storage().data_ptr() == model.theta_.untyped_storage().data_ptr(), name


def test_output_is_a_pure_function_of_theta():
    X, y = iris()
    model = MLP(hidden=(4,), optimizer="adam", epochs=1).fit(X, y)
    Xt = torch.as_tensor(X)
    other = torch.randn_like(model.theta_)
    before = model.output(model.theta_, Xt)
    model.output(other, Xt)
    assert torch.equal(model.output(model.theta_, Xt), before)
    # autograd through θ agrees with a finite difference along a random direction
    v = torch.randn_like(other)
    _, jvp = model.output_jvp(other, Xt, v)
    h = 1e-6
    fd = (model.output(other + h * v, Xt) - model.output(other - h * v, Xt)) / (2 * h)
    assert torch.allclose(jvp, fd, rtol=1e-6, atol=1e-8)


def test_penalty_excludes_biases():
    X, y = iris()
    model = MLP(hidden=(5,), optimizer="adam", epochs=1).fit(X, y)
    params = model.params(model.theta_)
    brute = 0.5 * sum((p**2).sum() for name, p in params.items() if not name.endswith("bias"))
    assert float(model.complexity(model.theta_)) == pytest.approx(float(brute), rel=1e-14)
    with_bias = MLP(hidden=(5,), optimizer="adam", epochs=1, penalize_bias=True).fit(X, y)
    total = 0.5 * (with_bias.theta_**2).sum()
    assert float(with_bias.complexity(with_bias.theta_)) == pytest.approx(float(total), rel=1e-14)


def test_softmax_null_space_is_flat():
    X, y = iris()
    model = MLP(hidden=(4,), optimizer="adam", epochs=1).fit(X, y)
    q = model.null_space()[:, 0]
    assert float(q.norm()) == pytest.approx(1.0)
    objective = functools.partial(model.objective, X=model.X_train_, y=model.y_train_)
    assert float(objective(model.theta_ + 3.0 * q)) == pytest.approx(
        float(objective(model.theta_)), rel=1e-12
    )
    assert MLP(likelihood="bernoulli").null_space() is None


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("likelihood, glm", [("bernoulli", LogisticGLM), ("categorical", SoftmaxGLM)])
def test_linear_network_fitted_by_lbfgs_matches_the_newton_glm(likelihood, glm):
    """hidden=() is a GLM with the same objective: L-BFGS must find Newton's minimiser."""
    X, y = breast_cancer() if likelihood == "bernoulli" else iris()
    net = MLP(hidden=(), likelihood=likelihood, s=0.5, optimizer="lbfgs", tol=1e-11).fit(X, y)
    ref = glm(s=0.5).fit(X, y)
    assert np.allclose(net.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-7)
    assert float(net.objective(net.theta_, net.X_train_, net.y_train_)) == pytest.approx(
        float(ref.objective(ref.theta_, ref.X_train_, ref.y_train_)), rel=1e-10
    )


def test_minibatch_step_uses_the_mean_scaled_gradient():
    """One full-batch SGD step is θ₁ = θ₀ − η ∇F(θ₀)/n with F = Σℓ + e^s C (documented)."""
    X, y = iris()
    lr = 0.3
    model = MLP(hidden=(4,), s=0.7, optimizer="sgd", lr=lr, epochs=1, batch_size=len(y))
    model.fit(X, y)
    expected = model.theta_init_ - lr * grad_objective(model, model.theta_init_) / len(y)
    assert torch.allclose(model.theta_, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("adam", 0.01)])
def test_minibatch_training_lowers_the_objective(optimizer, lr):
    X, y = iris()
    model = MLP(hidden=(8,), s=-2.0, optimizer=optimizer, lr=lr, momentum=0.9, epochs=30)
    model.fit(X, y)
    objective = functools.partial(model.objective, X=model.X_train_, y=model.y_train_)
    assert float(objective(model.theta_)) < 0.3 * float(objective(model.theta_init_))
    assert (model.predict(X) == y).mean() > 0.9


def test_fit_is_deterministic_and_records_batches_and_rates():
    X, y = iris()
    kwargs = dict(hidden=(4,), optimizer="sgd", lr=0.2, momentum=0.5, epochs=3, batch_size=32,
                  schedule="cosine", seed=7)
    a, b = MLP(**kwargs).fit(X, y), MLP(**kwargs).fit(X, y)
    assert torch.equal(a.theta_, b.theta_) and torch.equal(a.theta_init_, b.theta_init_)
    steps_per_epoch = -(-len(y) // 32)
    assert len(a.batch_order_) == len(a.lrs_) == 3 * steps_per_epoch
    for e in range(3):  # every epoch is a permutation of the data
        epoch = np.concatenate(a.batch_order_[e * steps_per_epoch : (e + 1) * steps_per_epoch])
        assert sorted(epoch.tolist()) == list(range(len(y)))
    assert a.lrs_[0] == pytest.approx(0.2) and a.lrs_[-1] < 0.01 and np.all(np.diff(a.lrs_) <= 0)
    c = MLP(**{**kwargs, "seed": 8}).fit(X, y)
    assert not torch.equal(a.theta_init_, c.theta_init_)
    assert not all(np.array_equal(p, q) for p, q in zip(a.batch_order_, c.batch_order_, strict=True))
    # replaying the recorded batches with plain SGD + momentum reproduces θ
    theta, m = a.theta_init_.clone(), torch.zeros_like(a.theta_init_)
    Xt, yt = a.X_train_, a.y_train_
    for index, lr in zip(a.batch_order_, a.lrs_, strict=True):
        i = torch.as_tensor(index)

        def batch_objective(t, i=i):
            return a.loss(t, Xt[i], yt[i]).mean() + a.lam / len(y) * a.complexity(t)

        m = 0.5 * m + torch.func.grad(batch_objective)(theta)
        theta = theta - lr * m
    assert torch.allclose(theta, a.theta_, rtol=0, atol=1e-12)


def test_clone_is_unfitted_and_refits_identically():
    X, y = iris()
    model = MLP(hidden=(4,), optimizer="adam", epochs=2, track_tangent=True).fit(X, y)
    copy = model.clone()
    assert copy.theta_ is None and copy.tangent_ is None and copy.batch_order_ is None
    with pytest.raises(RuntimeError, match="not fitted"):
        copy.predict_proba(X)
    assert torch.equal(copy.fit(X, y).theta_, model.theta_)


def test_sparse_features_are_densified():
    X, y = iris()
    dense = MLP(hidden=(4,), optimizer="adam", epochs=2).fit(X, y)
    sparse = MLP(hidden=(4,), optimizer="adam", epochs=2).fit(sp.csr_matrix(X), y)
    assert torch.equal(dense.theta_, sparse.theta_)
    assert np.array_equal(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))


def test_regression_with_estimated_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=200)
    model = MLP(hidden=(8,), likelihood="gaussian", sigma2=None, s=-3.0, optimizer="lbfgs",
                tol=1e-6)
    model.fit(X, y)
    residual = y - model.predict(X)
    # the σ²/θ fixed point to 1e-3: σ² is RSS/n of θ*, and θ* a minimum at that σ²
    assert model.sigma2 == pytest.approx(np.mean(residual**2), rel=2e-3)
    grad = torch.func.grad(lambda t: model.objective(t, model.X_train_, model.y_train_))
    assert float(grad(model.theta_).abs().max()) / len(y) <= 1e-3
    assert residual.std() < 0.2


def test_torch_model_wraps_any_module_factory():
    class Quadratic(nn.Module):
        def __init__(self, d, k):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(d, k))
            self.bias = nn.Parameter(torch.zeros(k))

        def forward(self, x):
            return (x**2) @ self.a + self.bias

    X, y = iris()
    model = TorchModel(Quadratic, "categorical", s=0.0, optimizer="lbfgs", tol=1e-9).fit(X, y)
    assert [name for name, _, _ in model.param_layout_] == ["a", "bias"]
    assert model.penalty_mask().tolist() == [1.0] * 12 + [0.0] * 3
    assert float(grad_objective(model, model.theta_).abs().max()) < 1e-6 * len(y)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="'swish'"):
        MLP(activation="swish")
    with pytest.raises(ValueError, match="'rmsprop'"):
        MLP(optimizer="rmsprop")
    with pytest.raises(ValueError, match="'step'"):
        MLP(schedule="step")
    with pytest.raises(ValueError, match="'poisson'"):
        MLP(likelihood="poisson")
    with pytest.raises(TypeError, match="nn.Module"):
        TorchModel(lambda d, k: None, "gaussian").fit(np.ones((3, 1)), np.ones(3))
    X, y = iris()
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        MLP(hidden=(4,), optimizer="sgd", lr=1e8, epochs=30).fit(X, y)
