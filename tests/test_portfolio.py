"""The portfolio: Exp3 on synthetic bandits (regret, best arm), its reward, and the loop logging."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

from alloop import ActiveLoop, Pool
from alloop.loop import LoopSettings
from alloop.models import SoftmaxGLM
from oracles import SimulatedOracle
from strategies.portfolio import Exp3, Portfolio, importance_weighted_accuracy


def _play(means, rounds, gamma, seed):
    rng = np.random.default_rng(seed)
    bandit = Exp3(len(means), gamma)
    arms, gained = [], 0.0
    for _ in range(rounds):
        arm, p = bandit.choose(rng)
        reward = float(rng.random() < means[arm])
        bandit.update(arm, reward, p[arm])
        arms.append(arm)
        gained += reward
    return np.asarray(arms), gained


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exp3_picks_the_best_arm_in_most_rounds_with_sublinear_regret(seed):
    means = np.array([0.3, 0.45, 0.5, 0.8])
    T, K, gamma = 3000, 4, 0.1
    arms, gained = _play(means, T, gamma, seed)
    assert np.mean(arms == 3) > 0.6
    assert np.mean(arms[-1000:] == 3) > 0.8
    # Auer et al. (2002), Cor. 3.2: E[regret] ≤ (e − 1) γ G + K ln K / γ with G = T·max mean
    bound = (np.e - 1) * gamma * T * means.max() + K * np.log(K) / gamma
    regret = T * means.max() - gained
    assert regret < bound
    uniform_regret = T * (means.max() - means.mean())
    assert regret < 0.5 * uniform_regret


def test_exp3_follows_a_switch_of_the_best_arm():
    rng = np.random.default_rng(0)
    bandit = Exp3(2, 0.2)
    late = []
    for t in range(4000):
        means = (0.9, 0.1) if t < 1000 else (0.1, 0.9)
        arm, p = bandit.choose(rng)
        bandit.update(arm, float(rng.random() < means[arm]), p[arm])
        if t >= 3000:
            late.append(arm)
    assert np.mean(np.asarray(late) == 1) > 0.8


def test_exp3_refuses_rewards_outside_the_unit_interval():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        Exp3(2).update(0, 1.5, 0.5)
    with pytest.raises(ValueError, match="gamma"):
        Exp3(2, gamma=0.0)


def test_importance_weighted_accuracy_is_the_weighted_mean():
    correct, q = np.array([1, 0, 1]), np.array([0.5, 0.25, 1.0])
    assert importance_weighted_accuracy(correct, q) == pytest.approx((2 + 0 + 1) / (2 + 4 + 1))


def test_the_portfolio_runs_in_the_loop_logs_arms_and_updates_the_bandit():
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
        classes=[0, 1, 2],
    )
    curve = loop.run().curve
    acq = curve.iloc[1:]
    probs = acq[["portfolio_p_margin", "portfolio_p_coreset", "portfolio_p_random"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert set(acq["portfolio_arm"]) <= {0.0, 1.0, 2.0}
    assert curve["labels"].tolist() == [9, 13, 17, 21, 25, 29, 33]
    assert len(portfolio.rewards) == 5  # every round after the first credits its predecessor
    assert all(0.0 <= r <= 1.0 for r in portfolio.rewards)
    assert not np.allclose(probs[-1], probs[0])  # the weights moved


def test_portfolio_arguments_are_checked():
    with pytest.raises(KeyError, match="unknown strategy 'margn'"):
        Portfolio(["margn"])
    with pytest.raises(ValueError, match="distinct"):
        Portfolio(["margin", "margin"])
    with pytest.raises(ValueError, match="not arms"):
        Portfolio(["margin"], params={"sld": {}})


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


def test_portfolio_by_name_in_a_config_builds_one_bandit_per_run(tmp_path):
    from alloop.config import ConfigError, parse_config
    from alloop.experiment import build_loop

    base = {"name": "pf", "data": {"source": "sklearn:iris"},
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
