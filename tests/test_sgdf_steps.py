"""SGDF's step kernels against brute force: the GLM closed form against autograd, both
against central differences of the run, and the closed-form penalty against autograd.

The brute force for a tangent is the same seeded minibatch run repeated at s ± h without a
tangent and differenced; SGDF differentiates that run exactly, so they agree to the central
difference's truncation error. The closed form and autograd compute the same products in a
different order, so their runs agree to rounding.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from alloop.models import LinearGLM, LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP
from alloop.optim import QuadraticPenalty, batch_gradient, sgdf_run
from alloop.tangent import sgdf_train
from alloop.tangent.glm_steps import glm_loss_gradient, output_hessian_vp

OPTIMIZERS = {
    "sgd": {"optimizer": "sgd", "lr": 0.3},
    "momentum": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    "adam": {"optimizer": "adam", "lr": 0.05},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@functools.cache
def data(likelihood: str, n: int = 240, d: int = 6):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, d))
    f = X @ rng.standard_normal((d, 3))
    if likelihood == "gaussian":
        y = f[:, 0] + 0.3 * rng.standard_normal(n)
    elif likelihood == "bernoulli":
        y = (f[:, 0] + rng.standard_normal(n) > 0).astype(int)
    else:
        y = np.argmax(f + rng.gumbel(size=f.shape), axis=1)
    return X, y


def fitted(likelihood: str, s: float = -1.0, **kwargs):
    X, y = data(likelihood)
    make = {"gaussian": LinearGLM, "bernoulli": LogisticGLM, "categorical": SoftmaxGLM}[likelihood]
    return make(s=s, **kwargs).fit(X, y)


LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_closed_form_run_equals_the_autograd_run(likelihood, optimizer):
    """θ_T and θ̇_T of the closed-form GLM steps equal the autograd path's to rounding."""
    model = fitted(likelihood)
    run = functools.partial(sgdf_train, model, epochs=3, batch_size=32, **OPTIMIZERS[optimizer])
    closed, autograd = run(), run(closed_form=False)
    assert rel(closed.theta, autograd.theta) <= 1e-12
    assert rel(closed.tangent, autograd.tangent) <= 1e-12
    plain = run(track_tangent=False)
    assert plain.tangent is None
    assert rel(plain.theta, closed.theta) <= 1e-13  # the tangent does not steer the run


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_closed_form_tangent_is_the_central_difference_of_the_run(likelihood, optimizer):
    model = fitted(likelihood)
    run = functools.partial(sgdf_train, epochs=4, batch_size=32, **OPTIMIZERS[optimizer])
    tangent = run(model).tangent
    h = 1e-4  # same seed: same batch order at s ± h
    plus = run(model.with_s(model.s + h), track_tangent=False).theta
    minus = run(model.with_s(model.s - h), track_tangent=False).theta
    assert rel(tangent, (plus - minus) / (2 * h)) <= 1e-6


def test_closed_form_without_intercept_and_with_estimated_sigma2():
    """No intercept row, and a Gaussian σ² estimated by the fit (the run uses the stored σ²)."""
    model = fitted("gaussian", fit_intercept=False, sigma2=None)
    assert model.sigma2 != 1.0
    run = functools.partial(sgdf_train, model, epochs=2, batch_size=50, lr=0.2)
    closed, autograd = run(), run(closed_form=False)
    assert rel(closed.theta, autograd.theta) <= 1e-12
    assert rel(closed.tangent, autograd.tangent) <= 1e-12


def test_closed_form_on_sparse_rows_equals_dense():
    rng = np.random.default_rng(0)
    X = sp.random(150, 20, density=0.2, random_state=1, format="csr")
    y = rng.integers(0, 3, 150)
    sparse, dense = SoftmaxGLM(s=0.5).fit(X, y), SoftmaxGLM(s=0.5).fit(X.toarray(), y)
    a, b = sgdf_train(sparse, epochs=2), sgdf_train(dense, epochs=2)
    assert torch.allclose(a.theta, b.theta, rtol=0, atol=1e-12)
    assert torch.allclose(a.tangent, b.tangent, rtol=0, atol=1e-12)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_step_kernel_equals_autograd_on_one_batch(likelihood):
    """ḡ and H_B θ̇ of one batch, closed form against a dense autograd Hessian."""
    model = fitted(likelihood)
    X, y = model.X_train_, model.y_train_
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(model.theta_.shape, generator=gen, dtype=torch.float64)
    theta_dot = torch.randn(model.theta_.shape, generator=gen, dtype=torch.float64)
    index = torch.arange(7, 40)
    grad = glm_loss_gradient(X, y, likelihood=likelihood, n_outputs=model.n_outputs_,
                             fit_intercept=True, sigma2=model.sigma2)
    g, g_dot = grad(theta, index, theta_dot)
    mean_loss = lambda t: model.loss(t, X[index], y[index]).mean()  # noqa: E731
    assert rel(g, torch.func.grad(mean_loss)(theta)) <= 1e-13
    assert rel(g_dot, torch.autograd.functional.hessian(mean_loss, theta) @ theta_dot) <= 1e-12
    g_only, none = grad(theta, index, None)
    assert none is None and rel(g_only, g) <= 1e-14


def test_output_hessian_vp_is_the_output_hessian_times_the_vector():
    f = torch.randn(5, 3, dtype=torch.float64)
    v = torch.randn(5, 3, dtype=torch.float64)
    from alloop.models import likelihoods as lk

    for likelihood, k in (("gaussian", 1), ("bernoulli", 1), ("categorical", 3)):
        Lam = lk.output_hessian(likelihood, f[:, :k], 2.0)
        expect = torch.einsum("ikl,il->ik", Lam, v[:, :k])
        assert torch.allclose(output_hessian_vp(likelihood, f[:, :k], v[:, :k], 2.0), expect,
                              rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        output_hessian_vp("poisson", f, v)


def test_quadratic_penalty_equals_the_autograd_penalty():
    """batch_gradient with QuadraticPenalty (closed form) against the same C as a plain
    callable (autograd), on a nonlinear loss; and a loss linear in θ has H_B θ̇ = 0."""
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    theta = torch.randn(4, generator=gen, dtype=torch.float64)
    theta_dot = torch.randn(4, generator=gen, dtype=torch.float64)
    loss = lambda t, i: torch.log1p(torch.exp(A[i] @ t)).sum()  # noqa: E731
    index = torch.arange(3, 15)
    for td in (theta_dot, None):
        closed = batch_gradient(loss, QuadraticPenalty(mask), theta, index, n=20, s=0.7, theta_dot=td)
        auto = batch_gradient(loss, lambda t: 0.5 * (mask * t**2).sum(), theta, index, n=20,
                              s=0.7, theta_dot=td)
        assert rel(closed[0], auto[0]) <= 1e-14
        assert (closed[1] is None) == (td is None)
        if td is not None:
            assert rel(closed[1], auto[1]) <= 1e-14
            # brute force: central difference of ∇F̃_B along (θ̇, ds = 1)
            h = 1e-5
            plus = batch_gradient(loss, QuadraticPenalty(mask), theta + h * td, index, n=20, s=0.7 + h)[0]
            minus = batch_gradient(loss, QuadraticPenalty(mask), theta - h * td, index, n=20, s=0.7 - h)[0]
            assert rel(closed[1], (plus - minus) / (2 * h)) <= 1e-8
    linear = lambda t, i: (A[i] @ t).sum()  # noqa: E731
    g, g_dot = batch_gradient(linear, QuadraticPenalty(mask), theta, index, n=20, s=0.0,
                              theta_dot=theta_dot)
    assert torch.allclose(g_dot, mask * (theta_dot + theta) / 20, rtol=0, atol=1e-15)
    assert torch.allclose(g, A[index].sum(0) / 12 + mask * theta / 20, rtol=0, atol=1e-14)


def test_mlp_run_with_the_closed_form_penalty_equals_the_callable_penalty():
    """The MLP passes its default C as a QuadraticPenalty; the same run with C as a callable
    (autograd) gives the same θ_T and θ̇_T to rounding."""
    X, y = data("categorical", n=90)
    model = MLP(hidden=(5,), s=-0.5, optimizer="sgd", lr=0.1, momentum=0.9, epochs=3,
                batch_size=16, track_tangent=True).fit(X, y)
    Xt, yt = model.X_train_, model.y_train_
    result = sgdf_run(
        lambda t, i: model.loss(t, Xt[i], yt[i]).sum(), lambda t: model.complexity(t),
        model.theta_init_, model.batch_order_, model.lrs_, n=len(yt), s=model.s,
        optimizer="sgd", momentum=0.9,
    )
    assert rel(result.theta, model.theta_) <= 1e-12
    assert rel(result.tangent, model.tangent_) <= 1e-12


def test_bad_step_choices_name_the_fix():
    model = fitted("bernoulli")
    X, y = data("categorical", n=60)
    mlp = MLP(hidden=(3,), optimizer="sgd", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="closed_form=True needs a GLM"):
        sgdf_train(mlp, theta0=mlp.theta_, closed_form=True, epochs=1)
    with pytest.raises(ValueError, match="exactly one of batch_loss"):
        sgdf_run(None, QuadraticPenalty(torch.ones(2)), torch.zeros(2), [np.arange(2)], [0.1],
                 n=2, s=0.0)
    grad = glm_loss_gradient(model.X_train_, model.y_train_, likelihood="bernoulli", n_outputs=1,
                             fit_intercept=True)
    with pytest.raises(ValueError, match="exactly one of batch_loss"):
        sgdf_run(lambda t, i: t.sum(), QuadraticPenalty(torch.ones(2)), torch.zeros(2),
                 [np.arange(2)], [0.1], n=2, s=0.0, loss_gradient=grad)
