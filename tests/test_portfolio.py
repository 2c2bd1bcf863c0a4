"""The portfolio: evidence-based switching on synthetic full-information problems (the best arm
listed first or not), its confidence bound against a direct computation, the leave-items-out
gain against explicit refits, the slot allocation, and the loop logging."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_iris

from alloop import ActiveLoop, Pool
from alloop.loop import LoopSettings
from alloop.models import LinearGLM, SoftmaxGLM
from oracles import SimulatedOracle
from strategies.portfolio import (
    Portfolio,
    allocate,
    challenger_bounds,
    incumbent_probabilities,
    leave_out_gains,
    next_incumbent,
    validation_loss,
)


def _play(means, noise, rounds, gamma, seed, confidence=0.95):
    """Every arm's gain is observed each round (as the leave-items-out credit does); the first
    arm is the incumbent until a challenger's advantage is significant."""
    rng = np.random.default_rng(seed)
    rewards, incumbent, shares = [], 0, []
    for _ in range(rounds):
        shares.append(incumbent_probabilities(len(means), incumbent, gamma))
        rewards.append((np.asarray(means) + noise * rng.standard_normal(len(means))).tolist())
        incumbent = next_incumbent(rewards, incumbent, confidence)
    return np.asarray(shares)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("order", [[3, 2, 1, 0], [1, 3, 0, 2], [0, 1, 2, 3]])
def test_the_best_arm_leads_in_most_rounds_and_regret_is_small_whichever_arm_is_first(seed, order):
    means = np.array([0.0, 0.3, 0.5, 1.0])[order]  # gains with noise of the same size as the gaps
    best = int(np.argmax(means))
    uniform = means.max() - means.mean()  # per-round regret of a uniform mixture
    shares = _play(means, noise=0.5, rounds=15, gamma=0.1, seed=seed)
    leads = shares[:, best] >= 0.9
    assert leads[6:].all()  # found within 6 rounds, and kept
    assert leads.mean() >= 0.6  # the best arm leads in most rounds
    regret = (means.max() - shares @ means).sum()
    # the price of a wrong prior: the rounds before the switch (the worst arm first: under uniform's)
    assert regret < (0.2 if best == 0 else 0.8) * 15 * uniform
    # over a long horizon the regret per round falls to the exploration share's, γ·(max − mean)
    shares = _play(means, noise=0.5, rounds=200, gamma=0.1, seed=seed)
    assert (means.max() - shares @ means).sum() < 0.15 * 200 * uniform


def test_an_incumbent_as_good_as_the_challengers_keeps_the_lead_in_most_runs():
    """Equal arms: noise alone moves the lead away from the first arm in about a quarter of the
    runs (the test looks every round, at two challengers), a stricter confidence in fewer."""
    def moved(confidence):
        return np.mean([_play(np.zeros(3), 1.0, 15, 0.1, seed, confidence)[:, 0].min() < 0.9
                        for seed in range(200)])
    assert moved(0.95) < 0.35
    assert moved(0.99) < 0.15


def test_challenger_bounds_equal_a_direct_paired_t_bound():
    rng = np.random.default_rng(4)
    rewards = rng.normal(size=(9, 3)).tolist()
    rewards[2][1] = None  # a round without an estimate for arm 1: that round is not paired
    bounds = challenger_bounds(rewards, 2, 0.9, min_rounds=3)
    r = np.array([[np.nan if v is None else v for v in row] for row in rewards])
    for c in (0, 1):
        d = r[:, c] - r[:, 2]
        d = d[~np.isnan(d)]
        n = d.size
        assert n == (9 if c == 0 else 8)
        direct = d.mean() - stats.t.ppf(0.9, n - 1) * np.sqrt(np.sum((d - d.mean()) ** 2) / (n - 1) / n)
        assert bounds[c] == pytest.approx(direct, rel=1e-12)
    assert np.isnan(bounds[2])
    assert np.isnan(challenger_bounds(rewards[:2], 0, 0.9, min_rounds=3)).all()
    # the lead moves to the challenger of highest bound, only when that bound is positive
    assert next_incumbent(rewards, 2, 0.9) == (int(np.nanargmax(bounds)) if np.nanmax(bounds) > 0 else 2)
    ahead = [[0.0, 1.0 + 0.1 * i, 0.5 + 0.1 * i] for i in range(4)]
    assert next_incumbent(ahead, 0, 0.95) == 1
    assert next_incumbent(ahead[:2], 0, 0.95) == 0  # too few rounds


def test_incumbent_probabilities_give_the_rest_gamma_over_k():
    np.testing.assert_allclose(incumbent_probabilities(3, 2, 0.3), [0.1, 0.1, 0.8])


def test_allocate_gives_arms_without_items_a_slot_first_and_fills_the_batch():
    rng = np.random.default_rng(0)
    for k in range(1, 8):
        counts = allocate(np.array([1.0, 0.0, 0.0]), k, rng, first=[1, 2])
        assert counts.sum() == k
        assert counts[1:].sum() == min(k, 2)


def _toy_regression(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    return X, y


def test_leave_out_gains_equal_explicit_refits_and_find_mislabeled_items():
    X, y = _toy_regression()
    X_val, y_val = _toy_regression(40, seed=1)
    y = y.copy()
    y[:10] += 8.0  # group 0: corrupted labels, removing them helps
    model = LinearGLM(s=0.0).fit(X, y)
    groups = [np.arange(0, 10), np.arange(10, 20), np.array([], dtype=np.int64)]
    gains = leave_out_gains(model, X, y, X_val, y_val, groups, size=10,
                            rng=np.random.default_rng(0), draws=1)
    # size ≥ each group: the whole group is left out, so the gain is fixed; recompute it by hand
    def mse(keep):
        fitted = LinearGLM(s=0.0).fit(X[keep], y[keep])
        return np.mean((fitted.predict(X_val) - y_val) ** 2)
    everything = np.ones(len(y), dtype=bool)
    for j in (0, 1):
        keep = everything.copy()
        keep[groups[j]] = False
        assert gains[j] == pytest.approx((mse(keep) - mse(everything)) / 10, rel=1e-9)
    assert gains[0] < 0 < gains[1]
    assert np.isnan(gains[2])


def test_validation_loss_is_the_log_loss_over_the_full_class_set():
    X, y = load_iris(return_X_y=True)
    model = SoftmaxGLM(s=0.0).fit(X, y)
    p = model.predict_proba(X)
    assert validation_loss(model, X, y, np.array([0, 1, 2])) == pytest.approx(
        -np.mean(np.log(p[np.arange(len(y)), y])))
    # a validation label the model has no column for costs log(1e-12), not a wrong column
    assert validation_loss(model, X[:1], np.array([7]), np.array([0, 1, 2, 7])) == pytest.approx(
        -np.log(1e-12))


def test_the_portfolio_runs_in_the_loop_logs_arms_and_credits_them():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    pool = Pool(X)
    portfolio = Portfolio(["margin", "coreset", "random"], gamma=0.3)
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        portfolio.strategy(),
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=9, batch_size=4, rounds=6, progress=False),
        X_test=X,
        y_test=y,
        X_val=X[::3],
        y_val=y[::3],
        classes=[0, 1, 2],
    )
    curve = loop.run().curve
    acq = curve.iloc[1:]
    probs = acq[["portfolio_p_margin", "portfolio_p_coreset", "portfolio_p_random"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert set(acq["portfolio_arm"]) <= {0.0, 1.0, 2.0}
    assert curve["labels"].tolist() == [9, 13, 17, 21, 25, 29, 33]
    # round 1 gives every arm a slot; every later round credits all three by their raw gains
    assert len(portfolio.rewards) == 5
    assert all(r is not None and np.isfinite(r) for row in portfolio.rewards for r in row)
    np.testing.assert_allclose(probs, [incumbent_probabilities(3, int(a), 0.3) for a in acq["portfolio_arm"]])
    # the logged incumbent is the first arm until the switching rule, replayed on the rewards, moves it
    incumbent, expected = 0, [0]
    for r in range(len(portfolio.rewards)):
        incumbent = next_incumbent(portfolio.rewards[: r + 1], incumbent, 0.95)
        expected.append(incumbent)
    assert acq["portfolio_arm"].tolist() == expected


def test_portfolio_arguments_are_checked():
    with pytest.raises(KeyError, match="unknown strategy 'margn'"):
        Portfolio(["margn"])
    with pytest.raises(ValueError, match="distinct"):
        Portfolio(["margin", "margin"])
    with pytest.raises(ValueError, match="not arms"):
        Portfolio(["margin"], params={"sld": {}})
    with pytest.raises(ValueError, match="confidence"):
        Portfolio(["margin", "random"], confidence=1.0)
    with pytest.raises(ValueError, match="min_rounds"):
        Portfolio(["margin", "random"], min_rounds=1)


def test_the_arm_and_its_probabilities_reach_mlflow_every_round(tmp_path):
    from alloop.tracking import MlflowTracker

    X, y = load_iris(return_X_y=True)
    pool = Pool(X)
    tracker = MlflowTracker("portfolio", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        Portfolio(["margin", "random"]).strategy(),
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=9, batch_size=3, rounds=3, progress=False),
        X_test=X,
        y_test=y,
        X_val=X[::3],
        y_val=y[::3],
        classes=[0, 1, 2],
        tracker=tracker,
    )
    result = loop.run()
    logged = {}
    for run in tracker.client.search_runs([tracker.experiment_id]):
        for key in ("portfolio_arm", "portfolio_p_margin"):
            for m in tracker.client.get_metric_history(run.info.run_id, key):
                logged.setdefault(key, {})[m.step] = m.value
    expected = result.curve.set_index("round")
    for key in ("portfolio_arm", "portfolio_p_margin"):
        assert {r: pytest.approx(v) for r, v in logged[key].items()} == expected[key].dropna().to_dict()


def test_portfolio_by_name_in_a_config_builds_one_portfolio_per_run(tmp_path):
    from alloop.config import ConfigError, parse_config
    from alloop.experiment import build_loop

    base = {"name": "pf", "data": {"source": "sklearn:iris", "validation_size": 0.2},
            "loop": {"initial": 9, "batch_size": 3, "rounds": 2},
            "store": {"path": str(tmp_path / "store.sqlite")}}
    cfg = parse_config({**base, "strategy": {"name": "portfolio",
                                             "params": {"arms": ["margin", "random"], "gamma": 0.2}}})
    first = build_loop(cfg, track=False, progress=False)
    # a store has one writer at a time, so the second run gets a store of its own
    other = cfg.model_copy(update={"store": cfg.store.model_copy(
        update={"path": str(tmp_path / "other.sqlite")})})
    second = build_loop(other, track=False, progress=False)
    assert first.strategy.scorer.__self__ is not second.strategy.scorer.__self__
    curve = first.run().curve
    assert {"portfolio_p_margin", "portfolio_p_random"} <= set(curve.columns)
    with pytest.raises(ConfigError, match="margn"):
        parse_config({**base, "strategy": {"name": "portfolio", "params": {"arms": ["margn"]}}})
    with pytest.raises(ConfigError, match="gamma"):
        parse_config({**base, "strategy": {"name": "portfolio", "params": {"gamma": 2.0}}})


def test_a_portfolio_without_validation_data_fails_before_round_one_naming_the_fix():
    X, y = load_iris(return_X_y=True)
    pool = Pool(X)
    with pytest.raises(ValueError, match="validation_size"):
        ActiveLoop(pool, SoftmaxGLM(s=0.0), Portfolio(["margin", "random"]).strategy(),
                   SimulatedOracle(dict(zip(pool.ids, y))),
                   LoopSettings(initial=9, batch_size=3, rounds=2, progress=False), classes=[0, 1, 2])
