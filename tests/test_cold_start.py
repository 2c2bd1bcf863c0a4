"""Cold start: initial sets chosen without labels, and the warning for a set missing a class."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine

from alloop import ActiveLoop, Pool
from alloop.cold_start import MissingClassWarning, initial_positions, missing_classes
from alloop.config import ConfigError, parse_config
from alloop.loop import LoopSettings
from alloop.models import SoftmaxGLM
from oracles import SimulatedOracle
from strategies.typiclust import typiclust_select


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _loop(X, y, initial, strategy="random", seed=0):
    pool = Pool(X)
    return ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        "margin",
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(
            initial={"size": initial, "strategy": strategy},
            batch_size=3,
            rounds=0,
            seed=seed,
            progress=False,
        ),
        classes=[0, 1, 2],
    )


def _random_initial_missing_class_0(X, y, size):
    for seed in range(200):
        order = np.random.default_rng([seed, 0, 0]).permutation(len(y))[:size]
        if 0 not in set(y[order]):
            return seed
    raise AssertionError("no seed found")


def test_a_random_initial_set_missing_a_class_warns_naming_it_and_the_fix(wine):
    X, y = wine
    seed = _random_initial_missing_class_0(X, y, 4)
    with pytest.warns(MissingClassWarning, match=r"no item of class 0.*strategy: typiclust"):
        result = _loop(X, y, 4, seed=seed).run()
    assert 0 not in set(result.pool.labels[result.pool.labeled].tolist())


@pytest.mark.parametrize("strategy", ["typiclust", "probcover", "kmeans"])
def test_label_free_initial_sets_cover_every_wine_class(wine, strategy):
    X, y = wine
    seed = _random_initial_missing_class_0(X, y, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingClassWarning)
        result = _loop(X, y, 4, strategy, seed=seed).run()
    assert result.curve["labels"].tolist() == [4]
    assert missing_classes(result.pool.labels[result.pool.labeled], [0, 1, 2]) == []


def test_initial_positions_match_direct_implementations(wine):
    X, _ = wine
    picks = initial_positions(X, 5, "typiclust", np.random.default_rng(3))
    assert picks.tolist() == typiclust_select(X, np.zeros(len(X), bool), 5,
                                              np.random.default_rng(3)).tolist()
    picks = initial_positions(X, 5, "kmeans", np.random.default_rng(4))
    seed = int(np.random.default_rng(4).integers(2**31))
    centers = KMeans(n_clusters=5, n_init=1, random_state=seed).fit(X).cluster_centers_
    assert sorted(picks.tolist()) == sorted(np.argmin(cdist(centers, X), axis=1).tolist())
    assert len(set(initial_positions(X, 7, "probcover", np.random.default_rng(0)).tolist())) == 7


def test_config_initial_strategy_and_its_errors(tmp_path):
    from alloop.experiment import build_loop

    base = {"name": "cold", "data": {"source": "sklearn:wine"}, "strategy": {"name": "margin"},
            "store": {"path": str(tmp_path / "store.sqlite")}}
    cfg = parse_config({**base, "loop": {"initial": {"size": 6, "strategy": "typiclust"}, "rounds": 0}})
    loop = build_loop(cfg, track=False, progress=False)
    assert (loop.settings.initial_size, loop.settings.initial_strategy) == (6, "typiclust")
    assert parse_config({**base, "loop": {"initial": 8}}).loop.initial == 8
    with pytest.raises(ConfigError, match="typiclust"):
        parse_config({**base, "loop": {"initial": {"size": 6, "strategy": "typicluster"}}})
    with pytest.raises(ValueError, match="unknown initial strategy 'kmean'"):
        _loop(np.eye(3), [0, 1, 2], 2, "kmean")
