"""Regression with an estimated σ²: every round's θ* minimises the objective at the σ² the
scores use, its tangent is the derivative of refits at that σ², and the chosen s* minimises the
validation loss V(s) -- on the config path (`model.kind: linear`, automatic regularity on by
default) and on the Python API default (`LinearGLM()` with the loop's regularity hook).

Brute force throughout: the gradient of the objective by autograd, central differences of
refits at s ± h with σ² held, and V(s) on a fine grid from the closed-form ridge solution."""

import numpy as np
import pytest
import torch

import alloop.experiment as experiment
from alloop import ActiveLoop, Pool
from alloop.config import parse_config
from alloop.loop import LoopSettings
from alloop.models import LinearGLM
from alloop.regularity.auto import loop_hook
from alloop.tangent import regularity_tangent
from oracles import SimulatedOracle

H = 1e-4  # central-difference step in s


class Recorder:
    """Wraps a regularity hook; keeps what it was given, so V(s) can be rebuilt."""

    def __init__(self, hook):
        self.hook, self.calls = hook, []

    def __call__(self, model, X, y, X_val, y_val, s0=None, **kw):
        fitted, s = self.hook(model, X, y, X_val, y_val, s0=s0, **kw)
        self.calls.append((np.asarray(X), np.asarray(y, float), np.asarray(X_val),
                           np.asarray(y_val, float), fitted))
        return fitted, s


def record_fits(monkeypatch):
    fits = []
    original = ActiveLoop.fit

    def _fit(self, search=True):
        model = original(self, search)
        X, y = self.pool.labeled_data()
        fits.append((model, np.asarray(X), np.asarray(y, float)))
        return model

    monkeypatch.setattr(ActiveLoop, "fit", _fit)
    return fits


def ridge(X, y, kappa):
    """Closed-form θ* of ½Σ(y − f)² + κ·½‖w‖² (intercept free): the minimiser at e^s σ² = κ."""
    Xd = np.hstack([X, np.ones((X.shape[0], 1))])
    penalty = np.eye(Xd.shape[1]) * kappa
    penalty[-1, -1] = 0.0
    return np.linalg.solve(Xd.T @ Xd + penalty, Xd.T @ y)


def check_round(model, X, y, call):
    assert model.estimate_sigma2 and model.sigma2 > 0
    theta = model.theta_.clone().requires_grad_(True)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    loss = model.loss(theta, Xt, yt).sum()
    penalty = model.lam * model.complexity(theta)
    g_loss, = torch.autograd.grad(loss, theta, retain_graph=True)
    g_pen, = torch.autograd.grad(penalty, theta)
    grad = (g_loss + g_pen).norm() / max(g_loss.norm(), g_pen.norm(), 1e-300)
    assert grad <= 1e-8, f"‖∇F(θ*)‖ relative {grad:.2e} at σ² = {model.sigma2}"
    # σ² is the residual variance of this very fit (the joint fixed point)
    rss = float(((y - model.predict(X)) ** 2).mean())
    assert model.sigma2 == pytest.approx(rss, rel=1e-8)
    # θ̇ against central differences of refits at the same σ²
    plus = LinearGLM(s=model.s + H, sigma2=model.sigma2, tol=1e-13).fit(X, y).theta_
    minus = LinearGLM(s=model.s - H, sigma2=model.sigma2, tol=1e-13).fit(X, y).theta_
    fd = (plus - minus) / (2 * H)
    tangent = regularity_tangent(model, "exact")
    err = float((tangent - fd).norm() / fd.norm())
    assert err <= 1e-5, f"tangent relative error {err:.2e}"
    # s* is the minimiser of V(s) = Σ_val (y − f)²/2σ², θ*(s) fitted on the hook's training rows
    # at this round's σ²; a fine grid around it
    # The search interval [-10, 10] bounds s at the search's own σ²; at this round's σ² it is
    # shifted by log(σ²_search/σ²) (θ* depends on e^s σ² only).
    X_tr, y_tr, X_val, y_val, searched = call
    shift = np.log(searched.sigma2) - np.log(model.sigma2)
    lo, hi = max(model.s - 1.0, -10.0 + shift), min(model.s + 1.0, 10.0 + shift)
    grid = np.linspace(lo, hi, int(np.ceil((hi - lo) / 1e-3)) + 1)
    Xv = np.hstack([X_val, np.ones((X_val.shape[0], 1))])
    V = [float(((y_val - Xv @ ridge(X_tr, y_tr, np.exp(s) * model.sigma2)) ** 2).sum())
         / (2 * model.sigma2) for s in grid]
    i = int(np.argmin(V))
    if i in (0, len(grid) - 1):  # the minimum over the interval may only sit at a bound
        assert grid[i] in (-10.0 + shift, 10.0 + shift), "the grid minimum is at its edge"
    assert abs(grid[i] - model.s) <= 1e-3, f"s* = {model.s:.5f}, grid minimiser {grid[i]:.5f}"
    return float(grad), err, abs(grid[i] - model.s)


def test_config_path_linear_with_automatic_regularity(monkeypatch, tmp_path):
    recorder = Recorder(experiment.automatic_regularity)
    monkeypatch.setattr(experiment, "automatic_regularity", recorder)
    fits = record_fits(monkeypatch)
    cfg = parse_config({
        "name": "sigma2-config", "seed": 3,
        "data": {"source": "sklearn:diabetes", "validation_size": 0.1},
        "model": {"kind": "linear"},
        "strategy": {"name": "sld"},
        "loop": {"initial": 12, "batch_size": 5, "rounds": 5},
        "store": {"path": str(tmp_path / "store.sqlite")},
    })
    loop = experiment.build_loop(cfg, progress=False, track=False)
    assert loop.model.estimate_sigma2  # the config default: σ² estimated
    result = loop.run()
    assert len(fits) == len(result.curve) == 6 and len(recorder.calls) == 6
    moved = 0
    for (model, X, y), call in zip(fits, recorder.calls, strict=True):
        check_round(model, X, y, call)
        moved += abs(model.s) > 0.1
    assert moved >= 5  # s leaves its start value 0 when the validation loss says so
    # the scores of the next round used exactly this model's σ²: SLD = ḟ²/σ² along θ̇
    assert result.model.sigma2 == fits[-1][0].sigma2


def test_python_api_default_linear_glm_with_the_loop_hook(monkeypatch):
    recorder = Recorder(loop_hook)
    fits = record_fits(monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = X @ rng.normal(size=6) + 3.0 * rng.standard_normal(400)
    pool = Pool(X[:300])
    oracle = SimulatedOracle(dict(zip(pool.ids, y[:300], strict=True)))
    model = LinearGLM()
    assert model.estimate_sigma2  # the Python default agrees with the config's
    loop = ActiveLoop(
        pool,
        model,
        "sld",
        oracle,
        settings=LoopSettings(initial=60, batch_size=10, rounds=4, progress=False),
        X_test=X[300:],
        y_test=y[300:],
        regularity=recorder,
    )
    loop.run()
    # no X_val: the loop holds out a fifth of the labels, searches s there, then refits on all
    assert len(fits) == len(recorder.calls) == 5
    for (model, X_all, y_all), call in zip(fits, recorder.calls, strict=True):
        assert X_all.shape[0] > call[0].shape[0]  # the final fit sees more rows than the search
        check_round(model, X_all, y_all, call)


def test_fit_alone_reaches_the_joint_fixed_point():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    y = X @ [1.0, 0.0, -1.0, 2.0] + 0.5 * rng.standard_normal(30)
    for s in (-4.0, 0.0, 3.0):
        model = LinearGLM(s=s).fit(X, y)
        # θ* is Ridge at alpha = e^s σ² and σ² is its mean squared residual
        theta = ridge(X, y, np.exp(s) * model.sigma2)
        np.testing.assert_allclose(model.theta_.numpy(), theta, rtol=1e-8, atol=1e-10)
        Xd = np.hstack([X, np.ones((30, 1))])
        assert model.sigma2 == pytest.approx(float(((y - Xd @ theta) ** 2).mean()), rel=1e-8)
    assert LinearGLM(sigma2=2.0).fit(X, y).sigma2 == 2.0  # a number holds σ² fixed
