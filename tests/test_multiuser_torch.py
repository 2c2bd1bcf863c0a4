"""Hierarchical heads over a shared trunk: SGDF tangents against finite differences of the run.

The brute force is the same seeded minibatch run repeated at s ± h (no tangent tracked) and
differenced; SGDF differentiates that run exactly, so the two agree to the central
difference's truncation error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alloop.models import likelihoods as lk
from alloop.multiuser import HierarchicalHeads


def data(likelihood="gaussian", n=60, n_users=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    users = np.arange(n) % (n_users - 1)  # the last user has no data
    offset = rng.normal(size=n_users)
    f = np.sin(2 * X[:, 0]) - X[:, 1] + offset[users]
    y = f + 0.3 * rng.normal(size=n) if likelihood == "gaussian" else (f > 0).astype(int)
    return X, y, users, n_users


def flat(model):
    return torch.cat([model.trunk_, model.head0_, model.heads_.reshape(-1)])


def flat_tangent(model, name):
    dW, dh0, dH = model.tangents_[name]
    return torch.cat([dW, dh0, dH.reshape(-1)])


SETTINGS = {
    "adam": dict(optimizer="adam", lr=0.02, epochs=8, batch_size=16),
    "sgd": dict(optimizer="sgd", lr=0.05, momentum=0.9, epochs=8, batch_size=16),
}


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_sgdf_tangents_equal_central_differences_of_the_run(likelihood, optimizer):
    X, y, users, U = data(likelihood)
    kw = dict(hidden=(5,), seed=3, **SETTINGS[optimizer])
    s = {"s0": 0.2, "s1": -0.3}
    model = HierarchicalHeads(likelihood, **s, **kw).fit_users(X, y, users, n_users=U)
    h = 1e-5
    for name in ("s0", "s1"):
        plus, minus = dict(s), dict(s)
        plus[name] += h
        minus[name] -= h
        a = HierarchicalHeads(likelihood, **plus, **kw).fit_users(X, y, users, U, track_tangents=False)
        b = HierarchicalHeads(likelihood, **minus, **kw).fit_users(X, y, users, U, track_tangents=False)
        fd = (flat(a) - flat(b)) / (2 * h)
        tangent = flat_tangent(model, name)
        assert float(fd.norm()) > 1e-4  # the run does depend on s
        assert float((tangent - fd).norm() / fd.norm()) < 1e-6, name


def test_user_without_data_has_the_global_head_and_its_tangent():
    X, y, users, U = data()
    model = HierarchicalHeads(hidden=(5,), epochs=5).fit_users(X, y, users, n_users=U)
    assert model.counts_[U - 1] == 0
    assert torch.equal(model.heads_[U - 1], model.head0_)
    for name in ("s0", "s1"):
        _, dh0, dH = model.tangents_[name]
        assert torch.equal(dH[U - 1], dh0)
        assert float(dh0.norm()) > 0  # non-zero before the first label
    scores = model.sld_scores(X[:3], [U - 1] * 3)
    assert (scores > 0).all()


def test_long_run_tangent_reaches_the_implicit_function_value():
    """Full-batch gradient descent to convergence: SGDF's tangent → −H⁻¹ρ (dense autograd)."""
    X, y, users, U = data(n=24, n_users=3)
    kw = dict(hidden=(3,), optimizer="sgd", lr=0.3, momentum=0.9, epochs=500, batch_size=24)
    model = HierarchicalHeads("gaussian", 0.0, 0.5, trunk_decay=0.1, **kw).fit_users(X, y, users, U)
    Xt = torch.as_tensor(X)
    ut = torch.as_tensor(users)
    q, p = model.trunk_.numel(), model.head0_.numel()
    mask = torch.ones(p, dtype=torch.float64)
    mask[-1] = 0.0
    active = 2  # users 0 and 1 have data

    def objective(theta, s0, s1):
        W, h0, H = theta[:q], theta[q : q + p], theta[q + p :].view(active, p)
        f = model._outputs(W, H, Xt, ut)
        loss = lk.nll("gaussian", f, torch.as_tensor(y)).sum()
        return (
            loss + 0.5 * torch.exp(s1) * ((H - h0) ** 2).sum()
            + 0.5 * torch.exp(s0) * (mask * h0**2).sum() + 0.05 * (W**2).sum()
        )

    theta = torch.cat([model.trunk_, model.head0_, model.heads_[:active].reshape(-1)])
    s = (torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    assert float(torch.func.grad(objective)(theta, *s).norm()) < 1e-7  # converged
    H = torch.func.hessian(objective)(theta, *s)
    for k, name in enumerate(("s0", "s1")):
        def grad_at(sk, k=k):
            return torch.func.grad(objective)(theta, *(sk if j == k else s[j] for j in range(2)))

        rho = torch.func.jacfwd(grad_at)(s[k])
        expected = -torch.linalg.solve(H, rho)
        dW, dh0, dH = model.tangents_[name]
        got = torch.cat([dW, dh0, dH[:active].reshape(-1)])
        assert float((got - expected).norm() / expected.norm()) < 1e-5, name


def test_sld_equals_squared_s_derivatives_of_the_loss_by_reruns():
    X, y, users, U = data()
    kw = dict(hidden=(5,), seed=1, **SETTINGS["adam"])
    model = HierarchicalHeads("gaussian", 0.1, 0.4, **kw).fit_users(X, y, users, n_users=U)
    Xc, uc, yc = X[:5], np.array([0, 1, 2, 3, 3]), y[:5]
    h = 1e-5
    r = -(torch.as_tensor(yc) - model.decision(Xc, uc)[:, 0])
    expected = np.zeros(5)
    for name, (s0, s1) in (("s0", (0.1, 0.4)), ("s1", (0.1, 0.4))):
        d = [h, 0.0] if name == "s0" else [0.0, h]
        a = HierarchicalHeads("gaussian", s0 + d[0], s1 + d[1], **kw).fit_users(
            X, y, users, U, track_tangents=False
        )
        b = HierarchicalHeads("gaussian", s0 - d[0], s1 - d[1], **kw).fit_users(
            X, y, users, U, track_tangents=False
        )
        df = (a.decision(Xc, uc)[:, 0] - b.decision(Xc, uc)[:, 0]) / (2 * h)
        expected += ((r * df) ** 2).numpy()
    np.testing.assert_allclose(model.sld_scores(Xc, uc, yc), expected, rtol=1e-6)


def test_errors():
    X, y, users, U = data()
    with pytest.raises(ValueError, match="optimizer"):
        HierarchicalHeads(optimizer="lbfgs")
    with pytest.raises(ValueError, match="n_users"):
        HierarchicalHeads().fit_users(X, y, users, n_users=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        HierarchicalHeads().decision(X, users)
