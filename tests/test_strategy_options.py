"""Strict strategy options: a misspelt option, a bad value or a context key is refused, at config
load (so `alloop run` exits before round 0) and from Python, with the strategy, the option, the
value and the valid names in the message."""

import subprocess
import sys

import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

import strategies
from alloop import ActiveLoop, Pool
from alloop.config import ConfigError, load_config, parse_config
from alloop.loop import LoopSettings
from alloop.models import LinearGLM, LogisticGLM
from oracles import SimulatedOracle
from strategies.base import CONTEXT_KEYS, Strategy, StrategyOptions, StrategyOptionsError
from strategies.registry import register


def config(strategy: dict, tmp_path=None) -> dict:
    return {
        "name": "options",
        "data": {"source": "sklearn:breast_cancer", "max_items": 120},
        "strategy": strategy,
        "loop": {"initial": 10, "batch_size": 5, "rounds": 1},
        **({"store": {"path": str(tmp_path / "store.sqlite")}} if tmp_path else {}),
    }


BAD = [
    ({"name": "sld", "params": {"tangent_metod": "cg"}}, ["'sld'", "tangent_metod", "'cg'", "tangent_method"]),
    ({"name": "margin", "params": {"bogus": 1}}, ["'margin'", "bogus=1", "takes no options"]),
    ({"name": "sld", "params": {"rng": 1}}, ["'rng'", "the loop supplies it"]),
    ({"name": "sld", "params": {"tangent_method": "cgg"}}, ["tangent_method", "'cgg'", "'exact'"]),
    ({"name": "vote-entropy", "params": {"n_members": True}}, ["n_members", "True"]),
    ({"name": "ssi", "params": {"solve_options": {"tol": 1e-6, "maxiter": 5}}},
     ["solve_options.maxiter", "5"]),
    ({"name": "influence", "params": {"X_val": [1.0]}}, ["'X_val'", "the loop supplies it"]),
]


@pytest.mark.parametrize(("section", "words"), BAD, ids=[str(b[0]["params"]) for b in BAD])
def test_bad_options_are_refused_at_config_load(section, words, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config(section)))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "strategy" in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(("section", "words"), BAD, ids=[str(b[0]["params"]) for b in BAD])
def test_bad_options_are_refused_from_python(section, words):
    item = strategies.get(section["name"])
    with pytest.raises(StrategyOptionsError) as info:
        item.check_options(section["params"])
    for word in words:
        assert word in str(info.value)
    # the same error from a scoring call, before any work is done
    X = np.zeros((3, 2))
    with pytest.raises(StrategyOptionsError):
        item.score(None, X, **{k: v for k, v in section["params"].items() if k not in CONTEXT_KEYS}
                   or {"bogus": 1})


def test_the_loop_refuses_bad_options_and_context_keys_at_construction():
    X = np.random.default_rng(0).standard_normal((30, 2))
    y = (X[:, 0] > 0).astype(int)
    pool = Pool(X)
    oracle = SimulatedOracle(dict(zip(pool.ids, y, strict=True)))
    for params in ({"tangent_metod": "cg"}, {"rng": 1}, {"y_labeled": [0]}):
        with pytest.raises(StrategyOptionsError):
            ActiveLoop(
                pool,
                LogisticGLM(),
                "sld",
                oracle,
                settings=LoopSettings(initial=5, progress=False),
                classes=[0, 1],
                strategy_params=params,
            )
    with pytest.raises(StrategyOptionsError, match="takes no options"):
        ActiveLoop(
            pool,
            LogisticGLM(),
            "margin",
            oracle,
            settings=LoopSettings(initial=5, progress=False),
            classes=[0, 1],
            strategy_params={"bogus": 1},
        )


def test_cli_exits_before_round_0_and_stores_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config({"name": "sld", "params": {"tangent_metod": "cg"}}, tmp_path)))
    proc = subprocess.run([sys.executable, "-m", "alloop", "run", str(path), "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "tangent_metod" in proc.stderr and "tangent_method" in proc.stderr
    assert not (tmp_path / "store.sqlite").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_good_options_reach_the_scorer_validated():
    cfg = parse_config(config({"name": "sld", "params": {"tangent_method": "cg", "damping": 0}}))
    checked = strategies.get("sld").check_options(cfg.strategy.params)
    assert checked == {"variant": "unlabeled", "tangent_method": "cg", "damping": 0.0,
                       "batch_size": strategies.get("sld").options().batch_size}
    # the cg option really changes the call: cg and exact tangents agree to the CG tolerance
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3))
    model = LinearGLM(s=0.0).fit(X, X @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(40))
    exact = strategies.get("sld").score(model, X)
    cg = strategies.get("sld").score(model, X, tangent_method="cg")
    np.testing.assert_allclose(cg, exact, rtol=1e-6)
    calls = []

    def spy(model, X_pool, **kwargs):
        calls.append(kwargs)
        return np.zeros(X_pool.shape[0])

    class SpyOptions(StrategyOptions):
        depth: int = 3

    item = Strategy("test-options-spy", "test", spy, options=SpyOptions)
    item.score(None, X, depth=5, rng=np.random.default_rng(0))
    assert calls[-1]["depth"] == 5 and "rng" in calls[-1]
    item.score(None, X)
    assert calls[-1] == {"depth": 3}  # defaults come from the options model


def test_registration_refuses_loose_or_clashing_options_models():
    class Loose(BaseModel):
        depth: int = 3

    class Clash(StrategyOptions):
        rng: int = 0

    for options, word in ((Loose, "extra='forbid'"), (Clash, "context keys")):
        with pytest.raises(ValueError, match=word):
            register(Strategy(f"test-bad-options-{word}", "test", lambda m, X, **_: X[:, 0],
                              options=options))

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        depth: int = 3

    assert register(Strategy("test-strict-options", "t", lambda m, X, **_: X[:, 0],
                             options=Strict)).check_options({"depth": 4}) == {"depth": 4}


def test_every_registered_strategy_declares_its_options_and_their_defaults_match_the_scorer():
    import inspect

    for name in strategies.available():
        if name.startswith(("test-", "doc-")):
            continue
        item = strategies.get(name)
        parameters = inspect.signature(item.scorer).parameters
        declared = {} if item.options is None else item.options.model_fields
        keyword = {k: p for k, p in parameters.items()
                   if p.kind is p.KEYWORD_ONLY and k not in CONTEXT_KEYS}
        # every keyword the scorer takes beyond the context is a declared option, same default
        # (else it could never be set: score() refuses undeclared names)
        assert set(keyword) <= set(declared), name
        for key, parameter in keyword.items():
            default = declared[key].default
            assert parameter.default == default or tuple(parameter.default or ()) == default, (name, key)
