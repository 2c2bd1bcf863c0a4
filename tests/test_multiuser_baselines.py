"""The MovieLens baselines (experiments/multiuser/baselines.py) as models of the loop, checked
against brute force: per-user ridge solves, finite differences of the tangent, a grid of s."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "multiuser"))

from baselines import (  # noqa: E402
    GlobalRegularity,
    GlobalRidge,
    IndependentRegularity,
    IndependentRidges,
    SearchReport,
)

from alloop import ActiveLoop, LoopSettings  # noqa: E402
from alloop.multiuser import PairPool, UserQuota, UserReport, pair_rows  # noqa: E402
from alloop.store.label_store import LabelStore  # noqa: E402
from oracles.simulated import SimulatedOracle  # noqa: E402

U, D = 5, 3


def data(n=120, seed=0, noise=0.3, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    users = rng.integers(0, U - 1, size=n)  # the last user has no rows
    W = scale * (rng.normal(size=D) + 0.5 * rng.normal(size=(U, D)))
    y = np.einsum("nd,nd->n", X, W[users]) + scale * users + noise * rng.normal(size=n)
    return X, users, y


def ridge_by_user(X, users, y, lam):
    """Brute force: each user's (X̃ᵀX̃ + λM)⁻¹X̃ᵀy, the intercept unpenalized."""
    M = np.diag([1.0] * D + [0.0])
    out = {}
    for u in np.unique(users):
        A = np.column_stack([X[users == u], np.ones((users == u).sum())])
        out[u] = np.linalg.solve(A.T @ A + lam * M, A.T @ y[users == u])
    return out


def test_independent_ridges_are_per_user_ridges_and_the_mean_without_data():
    X, users, y = data()
    model = IndependentRidges(n_users=U, s=0.7).fit(pair_rows(X, users), y)
    thetas = ridge_by_user(X, users, y, np.exp(0.7))
    Xq = np.random.default_rng(1).normal(size=(U, D))
    got = model.predict(pair_rows(Xq, np.arange(U)))
    want = [Xq[u] @ thetas[u][:D] + thetas[u][D] for u in range(U - 1)] + [y.mean()]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_independent_sld_is_the_squared_derivative_of_the_prediction_in_s():
    X, users, y = data()
    rows = pair_rows(X, users)
    model = IndependentRidges(n_users=U, s=0.3).fit(rows, y)
    Xq = pair_rows(np.random.default_rng(2).normal(size=(8, D)), np.arange(8) % (U - 1))
    h = 1e-5
    up, down = model.with_s(0.3 + h).predict(Xq), model.with_s(0.3 - h).predict(Xq)
    np.testing.assert_allclose(model.regularity_scores("sld", Xq), ((up - down) / (2 * h)) ** 2,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="'sld' only"):
        model.regularity_scores("ssi", Xq)


@pytest.mark.parametrize("Model, Hook", [(GlobalRidge, GlobalRegularity),
                                         (IndependentRidges, IndependentRegularity)])
def test_the_hooks_choose_the_grid_minimum_of_the_validation_loss(Model, Hook):
    X, users, y = data(100, seed=2, noise=1.0, scale=0.3)  # weak signal: V has an inner minimum
    train, val = pair_rows(X[:40], users[:40]), pair_rows(X[40:], users[40:])
    template = Model(s=0.0) if Model is GlobalRidge else Model(n_users=U, s=0.0)
    model, s = Hook()(template, train, y[:40], val, y[40:])
    grid = np.linspace(-10.0, 12.0, 2201)
    loss = [np.sum((template.with_s(g).clone().fit(train, y[:40]).predict(val) - y[40:]) ** 2)
            for g in grid]
    best = int(np.argmin(loss))
    assert 0 < best < grid.size - 1  # the check needs a minimum inside the box
    assert abs(s - grid[best]) < 0.05
    np.testing.assert_allclose(model.predict(val),
                               template.with_s(s).clone().fit(train, y[:40]).predict(val),
                               rtol=1e-9)


@pytest.mark.parametrize("name", ["global", "independent"])
def test_baselines_run_through_the_loop(tmp_path, name):
    X, users, y = data(200)
    pool = PairPool(X[:150], users[:150], [f"i{i}" for i in range(150)], [f"u{u}" for u in range(U)])
    val, test = pair_rows(X[150:175], users[150:175]), pair_rows(X[175:], users[175:])
    initial = [pool.ids[np.flatnonzero(users[:150] == u)[0]] for u in range(U - 1)]
    model, hook = ((GlobalRidge(), GlobalRegularity()) if name == "global"
                   else (IndependentRidges(n_users=U), IndependentRegularity()))
    loop = ActiveLoop(
        pool, model, "sld", SimulatedOracle(dict(zip(pool.ids.tolist(), y[:150].tolist()))),
        LoopSettings(initial=initial, batch_size=4, rounds=2, seed=0, progress=False),
        X_test=test, y_test=y[175:], X_val=val, y_val=y[150:175],
        batch_rule=UserQuota(1), regularity=hook,
        round_report=SearchReport(UserReport(test, y[175:]), hook),
        store=LabelStore(tmp_path / "labels.sqlite"),
    )
    curve = loop.run().curve
    assert curve["labels"].tolist() == [4, 8, 12]
    assert curve["labels_max"].max() <= 3  # at most one new label per user and round
    assert np.isfinite(curve[["s", "validation_loss", "rmse_mean_users"]].to_numpy()).all()
    assert (curve["hyper_evaluations"] >= 1).all()
