"""Stopping rules: the statistics against direct formulas, the decisions on curves whose right
stop is known, and the rules inside the loop and the config."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

import strategies
from alloop import ActiveLoop, Pool
from alloop.config import ConfigError, parse_config
from alloop.loop import LoopSettings
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.stopping import (
    RULES,
    delta_f,
    first_reached,
    kappa,
    make_rule,
    max_uncertainty,
    overall_uncertainty,
)
from oracles import SimulatedOracle


def test_kappa_is_cohens_formula():
    a = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    b = np.array([0, 1, 1, 1, 2, 0, 2, 0])
    observed = np.mean(a == b)
    chance = sum(np.mean(a == c) * np.mean(b == c) for c in (0, 1, 2))
    assert kappa(a, b) == pytest.approx((observed - chance) / (1 - chance))
    assert kappa(np.ones(4), np.ones(4)) == 1.0


def test_delta_f_is_one_minus_macro_f1_and_uncertainties_are_their_formulas():
    prev, cur = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 0, 1])
    f1 = []
    for c in (0, 1):
        tp = np.sum((cur == c) & (prev == c))
        f1.append(2 * tp / (np.sum(cur == c) + np.sum(prev == c)))
    assert delta_f(prev, cur) == pytest.approx(1 - np.mean(f1))
    p = np.array([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]])
    h = [1.0, -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2), 0.0]
    assert overall_uncertainty(p) == pytest.approx(np.mean(h))
    assert max_uncertainty(p) == pytest.approx(0.5)


def _first_stop(rule, values):
    """The first round (index into values) at which rule fires on the prefix up to it."""
    for r in range(len(values)):
        if rule.reached(values[: r + 1]):
            return r
    return None


@pytest.mark.parametrize(
    ("name", "params", "values", "stop"),
    [
        ("kappa-average", {"threshold": 0.99, "window": 3}, [None, 0.5, 0.95, 1.0, 0.995, 1.0], 5),
        ("kappa-average", {"threshold": 0.99, "window": 3}, [None, 1.0, 1.0, 0.9, 1.0], None),
        ("delta-f", {"threshold": 0.01, "window": 2}, [None, 0.2, 0.0, 0.02, 0.005, 0.0], 5),
        ("overall-uncertainty", {"threshold": 0.1}, [0.6, 0.3, 0.12, 0.09, 0.2], 3),
        ("max-confidence", {"threshold": 0.2}, [0.5, 0.5, 0.21, 0.2], 3),
        ("classification-change", {}, [None, 0.3, 0.01, 0.0], 3),
        ("ssi-quiet", {"threshold": 1e-3}, [None, 0.5, 1e-2, 1e-4], 3),
    ],
)
def test_rules_stop_where_the_curve_says(name, params, values, stop):
    assert _first_stop(make_rule(name, **params), values) == stop


def test_make_rule_names_bad_rules_and_parameters():
    with pytest.raises(ValueError, match="unknown stopping rule 'kappa'.*kappa-average"):
        make_rule("kappa")
    with pytest.raises(ValueError, match="no parameter 'window'.*valid: threshold"):
        make_rule("max-confidence", window=3)
    assert set(RULES) == {"kappa-average", "overall-uncertainty", "max-confidence",
                          "classification-change", "delta-f", "ssi-quiet"}


def _iris_loop(stop, **kw):
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    pool = Pool(X)
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        "margin",
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=15, batch_size=5, rounds=15, stop=stop, progress=False),
        X_test=X,
        y_test=y,
        classes=[0, 1, 2],
        **kw,
    )
    return loop, X


@pytest.mark.parametrize(
    "rule",
    [make_rule("overall-uncertainty", threshold=0.25), make_rule("max-confidence", threshold=0.45),
     make_rule("classification-change"), make_rule("kappa-average", threshold=0.98, window=2),
     make_rule("delta-f", threshold=0.02, window=2)],
    ids=lambda r: r.name,
)
def test_the_loop_stops_at_the_first_round_the_rule_fires(rule):
    loop, X = _iris_loop([rule])
    result = loop.run()
    values = result.curve[rule.metric].tolist() if rule.metric in result.curve else []
    values = [None if not np.isfinite(v) else v for v in values]
    assert result.stop_reason == rule.name, result.curve
    assert _first_stop(rule, values) == len(values) - 1  # it fired at the last round, not before
    assert loop.store.get_meta("stop_reason") == rule.name
    # the logged statistic is the rule's formula on the final model and the remaining pool
    unlabeled = X[~result.pool.labeled]
    proba = result.model.predict_proba(unlabeled)
    expected = {"overall-uncertainty": overall_uncertainty(proba),
                "max-confidence": max_uncertainty(proba)}.get(rule.name)
    if expected is not None:
        assert values[-1] == pytest.approx(expected, rel=1e-10)


def test_ssi_quiet_logs_the_largest_ssi_of_the_remaining_pool():
    X, y = load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0))[:150, :5]
    y = y[:150]
    X_val, y_val = X[100:], y[100:]
    pool = Pool(X[:100])
    rule = make_rule("ssi-quiet", threshold=1e-12)
    loop = ActiveLoop(
        pool,
        LogisticGLM(s=0.0),
        "margin",
        SimulatedOracle(dict(zip(pool.ids, y[:100]))),
        settings=LoopSettings(initial=20, batch_size=5, rounds=2, stop=[rule], progress=False),
        X_val=X_val,
        y_val=y_val,
        classes=[0, 1],
    )
    result = loop.run()
    assert result.stop_reason == "max_rounds"  # a 1e-12 threshold is never reached here
    expected = strategies.get("ssi").score(result.model, X[:100][~result.pool.labeled],
                                           X_val=X_val, y_val=y_val).max()
    assert result.curve[rule.metric].iloc[-1] == pytest.approx(expected, rel=1e-8)


def test_first_reached_reports_the_first_rule_in_order():
    rules = [make_rule("max-confidence", threshold=0.1), make_rule("overall-uncertainty", threshold=0.1)]
    curve = [{"stop_max_confidence": 0.05, "stop_overall_uncertainty": 0.01}]
    assert first_reached(rules, curve) == "max-confidence"
    assert first_reached(rules[1:], [{}]) is None


def _config(loop, store=None):
    return {"name": "stop", "data": {"source": "sklearn:iris"}, "strategy": {"name": "margin"},
            "loop": loop, **({"store": {"path": str(store)}} if store else {})}


def test_config_builds_the_rules_and_refuses_bad_ones(tmp_path):
    from alloop.experiment import build_loop

    cfg = parse_config(_config({"initial": 10, "batch_size": 5, "rounds": 3,
                                "stop": [{"rule": "kappa-average", "threshold": 0.95},
                                         {"rule": "max-confidence"}]}, tmp_path / "s.sqlite"))
    loop = build_loop(cfg, track=False, progress=False)
    assert [(r.name, r.threshold) for r in loop.settings.stop] == [
        ("kappa-average", 0.95), ("max-confidence", 0.1)]
    with pytest.raises(ConfigError, match="window"):
        parse_config(_config({"stop": [{"rule": "max-confidence", "window": 2}]}))
    with pytest.raises(ConfigError, match="kappa-averag"):
        parse_config(_config({"stop": [{"rule": "kappa-averag"}]}))
