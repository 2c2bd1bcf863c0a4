"""Multi-user SSI against brute force: up-weight a candidate, refit, re-select s*, difference.

The brute force knows nothing of alloop.multiuser: the hierarchical objective over ONE flat
vector (θ_0, θ_1..θ_U) plus ε·ℓ(z; θ_u), minimised by dense Newton, its tangents by a dense
solve of autograd's Hessian, s* as the root of ∇_s V found by scipy, and ds*/dε as the
central difference (s*(+h) − s*(−h)) / 2h.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from alloop.models import likelihoods as lk
from alloop.multiuser import HierarchicalGLM, select_hyperparameters
from alloop.multiuser.ssi import s_influence_scores, ssi_directions, ssi_scores

DT = torch.float64


def S(value):
    return torch.tensor(float(value), dtype=DT)


class WeightedDense:
    """F(Θ; s) + ε ℓ(z; θ_u) as a function of one flat vector (brute force)."""

    def __init__(self, likelihood, X, y, users, n_users):
        self.lik = likelihood
        self.X = torch.cat([torch.as_tensor(X, dtype=DT), torch.ones(len(X), 1, dtype=DT)], 1)
        self.y = torch.as_tensor(y, dtype=DT)
        self.users = torch.as_tensor(users)
        self.U, self.p = n_users, self.X.shape[1]
        self.mask = torch.ones(self.p, dtype=DT)
        self.mask[-1] = 0.0
        self.extra = None  # (x̃, y, user) of the up-weighted candidate
        self._warm = None

    def split(self, flat):
        return flat[: self.p], flat[self.p :].view(self.U, self.p)

    def loss(self, thetas, X, y, users):
        f = (X * thetas[users]).sum(1, keepdim=True)
        return lk.nll(self.lik, f, y)

    def objective(self, flat, s0, s1, eps):
        theta0, thetas = self.split(flat)
        value = self.loss(thetas, self.X, self.y, self.users).sum()
        value = value + 0.5 * torch.exp(s1) * ((thetas - theta0) ** 2).sum()
        value = value + 0.5 * torch.exp(s0) * (self.mask * theta0**2).sum()
        if self.extra is not None:
            x, y, u = self.extra
            value = value + eps * self.loss(thetas, x, y, u).sum()
        return value

    def minimise(self, s, eps):
        args = (S(s[0]), S(s[1]), S(eps))
        flat = torch.zeros(self.p * (self.U + 1), dtype=DT) if self._warm is None else self._warm
        for _ in range(100):
            g = torch.func.grad(self.objective)(flat, *args)
            if g.norm() < 1e-13:
                break
            H = torch.func.hessian(self.objective)(flat, *args)
            flat = flat - torch.linalg.solve(H, g)
        self._warm = flat
        return flat

    def hypergradient(self, s, eps, X_val, y_val, users_val):
        """∇_s V by dense tangents −H⁻¹∂_s∇F (autograd)."""
        flat = self.minimise(s, eps)
        args = [S(s[0]), S(s[1]), S(eps)]
        H = torch.func.hessian(self.objective)(flat, *args)
        Xv = torch.cat([torch.as_tensor(X_val, dtype=DT), torch.ones(len(X_val), 1, dtype=DT)], 1)
        yv, uv = torch.as_tensor(y_val, dtype=DT), torch.as_tensor(users_val)

        def V(f):
            return self.loss(self.split(f)[1], Xv, yv, uv).sum()

        gV = torch.func.grad(V)(flat)
        out = []
        for k in range(2):

            def grad_at(sk, k=k):
                a = list(args)
                a[k] = sk
                return torch.func.grad(self.objective)(flat, *a)

            rho = torch.func.jacfwd(grad_at)(args[k])
            out.append(float(gV @ -torch.linalg.solve(H, rho)))
        return np.array(out)

    def s_star(self, eps, start, val, which=(0, 1)):
        def residual(x):
            s = np.array(start, dtype=float)
            s[list(which)] = x
            return self.hypergradient(s, eps, *val)[list(which)]

        sol = scipy.optimize.root(residual, np.asarray(start)[list(which)], tol=1e-12)
        assert np.abs(residual(sol.x)).max() < 1e-10, sol.message
        return sol.x


def problem(likelihood, seed, n_users=4, per_user=10, d=2, n_val=8):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=d)
    W = w0 + 0.6 * rng.normal(size=(n_users, d))
    off = 0.5 * rng.normal(size=n_users)

    def draw(users):
        X = rng.normal(size=(len(users), d))
        f = (X * W[users]).sum(1) + off[users]
        if likelihood == "gaussian":
            return X, f + 0.7 * rng.normal(size=len(users))
        return X, (rng.random(len(users)) < 1 / (1 + np.exp(-2 * f))).astype(float)

    users = np.repeat(np.arange(n_users - 1), per_user)  # the last user has no training data
    X, y = draw(users)
    users_val = np.arange(n_val) % n_users
    Xv, yv = draw(users_val)
    return X, y, users, Xv, yv, users_val


# (seed, validation rows) where V has an interior minimum in both s_0 and s_1
@pytest.mark.parametrize(
    ("likelihood", "seed", "n_val", "tol"),
    [("gaussian", 8, 8, 1e-6), ("bernoulli", 6, 16, 1e-6)],
)
def test_s_influence_equals_refit_reselect_central_difference(likelihood, seed, n_val, tol):
    X, y, users, Xv, yv, uv = problem(likelihood, seed, n_val=n_val)
    U = 4
    dense = WeightedDense(likelihood, X, y, users, U)
    val = (Xv, yv, uv)
    # the root is polished by brute force from the selection's answer (V is flat far from it)
    _, info = select_hyperparameters(HierarchicalGLM(likelihood).fit_users(X, y, users, n_users=U), *val)
    s_star = dense.s_star(0.0, np.array([info.s0, info.s1]), val)
    assert np.all(np.abs(s_star) < 6), f"s* = {s_star} is not interior for this test problem"
    model = HierarchicalGLM(likelihood, *s_star, tol=1e-13).fit_users(X, y, users, n_users=U)
    directions = ssi_directions(model, Xv, yv, uv, fd_step=1e-4)
    assert np.abs(directions.hypergradient).max() < 1e-7  # fitted at the validation minimum

    rng = np.random.default_rng(seed + 10)
    Xc = rng.normal(size=(3, 2))
    uc = np.array([0, 2, 3])  # user 3 has no training data
    yc = np.array([0.7, -1.2, 1.5]) if likelihood == "gaussian" else np.array([1.0, 0.0, 1.0])
    signed = s_influence_scores(model, Xc, uc, yc, directions=directions)
    h = 1e-4
    for i in range(3):
        xt = torch.cat([torch.as_tensor(Xc[i : i + 1]), torch.ones(1, 1, dtype=DT)], 1)
        dense.extra = (xt, torch.tensor([yc[i]], dtype=DT), torch.tensor([uc[i]]))
        brute = (dense.s_star(h, s_star, val) - dense.s_star(-h, s_star, val)) / (2 * h)
        err = np.linalg.norm(signed[i] - brute) / np.linalg.norm(brute)
        print(f"{likelihood} candidate {i}: relative error {err:.2e}")
        assert err <= tol, (i, signed[i], brute)
    # the labeled SSI is the squared norm; the unlabeled one its expectation over the model's y
    labeled = ssi_scores(model, Xc, uc, y=yc, directions=directions)
    np.testing.assert_allclose(labeled, (signed**2).sum(1), rtol=1e-12)
    if likelihood == "bernoulli":  # E_y by enumerating y ∈ {0, 1}
        p = 1 / (1 + np.exp(-model.decision(Xc, uc)[:, 0].numpy()))
        s1 = ssi_scores(model, Xc, uc, y=np.ones(3), directions=directions)
        s0 = ssi_scores(model, Xc, uc, y=np.zeros(3), directions=directions)
        expected = p * s1 + (1 - p) * s0
        np.testing.assert_allclose(ssi_scores(model, Xc, uc, directions=directions), expected)


def test_one_hyperparameter_against_refit_reselect():
    """With s_0 fixed, SSI over s_1 alone is the 1-D derivative of the re-selected s_1."""
    X, y, users, Xv, yv, uv = problem("bernoulli", 6, n_val=16)
    dense = WeightedDense("bernoulli", X, y, users, 4)
    val = (Xv, yv, uv)
    start = np.array([0.5, 0.0])
    s1 = dense.s_star(0.0, start, val, which=(1,))[0]
    model = HierarchicalGLM("bernoulli", 0.5, s1, tol=1e-13).fit_users(X, y, users, n_users=4)
    dirs = ssi_directions(model, Xv, yv, uv, hyperparameters="s1", fd_step=1e-4)
    x = np.array([[0.3, -0.8]])
    signed = s_influence_scores(model, x, [1], [1.0], directions=dirs)
    xt = torch.cat([torch.as_tensor(x), torch.ones(1, 1, dtype=DT)], 1)
    dense.extra = (xt, torch.tensor([1.0], dtype=DT), torch.tensor([1]))
    h = 1e-4
    at = np.array([0.5, s1])
    brute = (dense.s_star(h, at, val, (1,)) - dense.s_star(-h, at, val, (1,))) / (2 * h)
    assert signed.shape == (1, 1)
    assert abs(signed[0, 0] - brute[0]) <= 1e-6 * abs(brute[0])


def test_dropping_the_third_order_term_changes_logistic_scores_only():
    X, y, users, Xv, yv, uv = problem("bernoulli", 3)
    model = HierarchicalGLM("bernoulli", 0.3, 0.2).fit_users(X, y, users, n_users=4)
    Xc = np.random.default_rng(0).normal(size=(5, 2))
    uc = np.arange(5) % 4
    # a floor above ∇²V's eigenvalues: warned about, and the same divisor for both forms
    with pytest.warns(RuntimeWarning, match="not all above the floor"):
        full = ssi_scores(model, Xc, uc, Xv, yv, uv, curvature_floor=1e3)
        approx = ssi_scores(model, Xc, uc, Xv, yv, uv, curvature_floor=1e3, third_order=False)
    assert not np.allclose(full, approx, rtol=1e-3)
    g = HierarchicalGLM("gaussian", 0.3, 0.2).fit_users(X, X[:, 0] + users, users, n_users=4)
    yv_g = Xv[:, 0] + uv
    with pytest.warns(RuntimeWarning, match="not all above the floor"):
        a = ssi_scores(g, Xc, uc, Xv, yv_g, uv, curvature_floor=1e3)
        b = ssi_scores(g, Xc, uc, Xv, yv_g, uv, curvature_floor=1e3, third_order=False)
    np.testing.assert_allclose(a, b, rtol=1e-12)  # e = 0 for squared loss


def test_needs_labels_for_the_signed_influence():
    X, y, users, Xv, yv, uv = problem("gaussian", 1)
    model = HierarchicalGLM().fit_users(X, y, users, n_users=4)
    with pytest.raises(ValueError, match="needs labels"):
        s_influence_scores(model, Xv, uv, None, Xv, yv, uv)
