"""Pool scoring on a local Ray cluster (2 CPUs) against in-process scoring.

The reference is always the strategy's own in-process ``score`` of the whole pool (or, for a
Parquet pool, of the same rows loaded in memory): the Ray paths must return the same floats.
"""

import os
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import strategies
from alloop.loop import LoopSettings
from alloop.models import SoftmaxGLM
from alloop.scale import RayScoring, score_parquet
from strategies.base import Strategy

ray = pytest.importorskip("ray")
# the test-only strategies below are unpickled on Ray workers, which cannot import this file
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_POOL, N_FEATURES, N_CLASSES = 200_000, 64, 3


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def _sample(rng, W, n):
    X = rng.normal(size=(n, W.shape[0]))
    return X, np.argmax(X @ W + rng.gumbel(size=(n, W.shape[1])), axis=1)


@pytest.fixture(scope="module")
def problem():
    """A softmax GLM fitted on 300 labels, a 200,000 × 64 float64 pool and a validation split."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(N_FEATURES, N_CLASSES)) / 4
    X_lab, y_lab = _sample(rng, W, 300)
    X_val, y_val = _sample(rng, W, 200)
    X_pool, _ = _sample(rng, W, N_POOL)
    model = SoftmaxGLM(s=0.0).fit(X_lab, y_lab)
    context = {"X_labeled": X_lab, "y_labeled": y_lab, "X_val": X_val, "y_val": y_val,
               "rng": np.random.default_rng(1)}
    return model, X_pool, context


@pytest.mark.parametrize("name", ["sld", "uncertainty"])
def test_ray_scores_of_a_200k_pool_equal_in_process_scores(cluster, problem, name):
    model, X_pool, context = problem
    strategy = strategies.get(name)
    expected = strategy.score(model, X_pool, **context)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to the driver
        got = RayScoring(batch_size=8192)(strategy, model, X_pool, **context)
    assert got.shape == (N_POOL,)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
    assert np.ptp(got) > 0  # the scores differ between rows: the order was checked


# this model is not fitted at the validation-selected s*: SSI warns that V'' < 0, as it should
@pytest.mark.filterwarnings("ignore:SSI. V''.s. = .* is not a positive curvature")
@pytest.mark.parametrize("name", ["sti", "ssi", "margin", "entropy"])
def test_every_row_wise_strategy_matches_in_process_scoring(cluster, problem, name):
    model, X_pool, context = problem
    X = X_pool[:20_000]
    strategy = strategies.get(name)
    assert strategy.row_wise
    # uneven shards and batches: 20,000 rows in shards of 7,000, batches of 3,000
    got = RayScoring(batch_size=3000, shard_size=7000)(strategy, model, X, **context)
    np.testing.assert_allclose(got, strategy.score(model, X, **context), rtol=1e-10, atol=0)


def test_strategies_without_a_split_fall_back_with_a_warning_or_raise(cluster, problem):
    model, X_pool, context = problem
    X = X_pool[:300]
    coreset = strategies.get("coreset")
    assert not coreset.row_wise
    with pytest.warns(RuntimeWarning, match="'coreset' is scored in this process"):
        got = RayScoring()(coreset, model, X, **context)
    np.testing.assert_array_equal(got, coreset.score(model, X, **context))
    with pytest.raises(ValueError, match="cannot shard strategy 'coreset'"):
        RayScoring(fallback="error")(coreset, model, X, **context)
    # the labeled variant scores each row at its pool label: not row-wise, scored locally
    labeled = {**context, "variant": "labeled", "y_pool": np.arange(300) % N_CLASSES}
    with pytest.warns(RuntimeWarning, match="'sld' is scored in this process.*labeled variant"):
        got = RayScoring()(strategies.get("sld"), model, X, **labeled)
    np.testing.assert_array_equal(got, strategies.get("sld").score(model, X, **labeled))


# ---------------------------------------------------------------------- shipped once per round
class LoggedState:
    """A state that appends its process id to a file each time it is unpickled."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()}\n")


def _first_feature(state: LoggedState, X: np.ndarray) -> np.ndarray:
    return X[:, 0] * 2.0


def test_the_state_is_unpickled_once_per_worker_not_once_per_batch(cluster, tmp_path):
    log = tmp_path / "unpickled.txt"
    counting = Strategy(
        "first-feature", "test", lambda model, X, **_: np.asarray(X)[:, 0] * 2.0,
        prepare=lambda model, **_: LoggedState(str(log)), score_rows=_first_feature,
    )
    X = np.random.default_rng(0).normal(size=(20_000, 4))
    got = RayScoring(batch_size=500, shard_size=2000)(counting, None, X)  # 40 batches
    np.testing.assert_array_equal(got, X[:, 0] * 2.0)
    pids = log.read_text().split()
    assert 1 <= len(pids) <= 4 and len(pids) == len(set(pids))  # once per worker process


# ---------------------------------------------------------------------- Parquet pools
@pytest.fixture(scope="module")
def parquet_pool(tmp_path_factory, problem):
    """Three Parquet files (several row groups each) of string ids and 64 feature columns."""
    _, X_pool, _ = problem
    folder = tmp_path_factory.mktemp("pool")
    X = X_pool[:12_000]
    ids = np.array([f"item-{i:05d}" for i in range(len(X))])
    for part, rows in enumerate(np.array_split(np.arange(len(X)), 3)):
        table = pa.table({"id": ids[rows], **{f"x{j}": X[rows, j] for j in range(N_FEATURES)}})
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=1500)
    return folder, ids, X


@pytest.mark.parametrize("name", ["sld", "entropy"])
def test_a_streamed_parquet_pool_scores_like_the_pool_in_memory(cluster, problem, parquet_pool,
                                                                name):
    model, _, context = problem
    folder, ids, X = parquet_pool
    expected = strategies.get(name).score(model, X, **context)
    order = sorted(range(len(ids)), key=lambda i: (-expected[i], ids[i]))[:25]
    for backend in ("local", "ray"):
        every = score_parquet(name, model, folder, backend=backend, batch_size=1000, **context)
        assert every.ids.tolist() == ids.tolist()  # file order, then row order
        np.testing.assert_allclose(every.scores, expected, rtol=1e-10, atol=0)
        best = score_parquet(name, model, folder, backend=backend, batch_size=1000, top_k=25,
                             **context)
        assert best.ids.tolist() == ids[order].tolist()
        np.testing.assert_allclose(best.scores, expected[order], rtol=1e-10, atol=0)


def test_local_streaming_scores_one_batch_at_a_time(parquet_pool):
    folder, ids, X = parquet_pool
    seen = []

    def rows(state, X_rows):
        seen.append(X_rows.shape)
        return X_rows[:, 3]

    spy = Strategy("spy", "test", lambda model, X, **_: X[:, 3],
                   prepare=lambda model, **_: None, score_rows=rows)
    got = score_parquet(spy, None, folder, backend="local", batch_size=700, top_k=5)
    assert max(n for n, _ in seen) <= 700 and sum(n for n, _ in seen) == len(X)
    assert all(d == N_FEATURES for _, d in seen)
    np.testing.assert_array_equal(got.scores, np.sort(X[:, 3])[::-1][:5])


def test_parquet_scoring_refuses_pool_dependent_strategies(parquet_pool, problem):
    model, _, _ = problem
    with pytest.raises(ValueError, match="'coreset' has no row-wise split"):
        score_parquet("coreset", model, parquet_pool[0], backend="local")


# ---------------------------------------------------------------------- alloop compare on Ray
def _curves(uri: str, experiment: str) -> dict:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    out = {}
    for run in client.search_runs([exp.experiment_id], "tags.alloop = 'loop'"):
        history = client.get_metric_history(run.info.run_id, "curve.accuracy")
        key = (run.data.params["strategy.name"], int(run.data.params["seed"]))
        out[key] = sorted((m.step, m.value) for m in history)
    return out


def test_compare_on_ray_gives_the_curves_of_worker_processes(cluster, tmp_path):
    import alloop.compare

    curves = {}
    for backend in ("process", "ray"):
        folder = tmp_path / backend
        folder.mkdir()
        config = {
            "name": "tiny-ray",
            "data": {"source": "sklearn:breast_cancer", "max_items": 160},
            "model": {"kind": "logistic", "C": 1.0, "auto_regularity": False},
            "loop": {"initial": 6, "batch_size": 6, "rounds": 2},
            "compare": {"strategies": ["random", "entropy"], "seeds": 2,
                        "store_dir": str(folder / "stores")},
        }
        path = folder / "tiny.yaml"
        path.write_text(yaml.safe_dump(config))
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        table = alloop.compare(path, jobs=2, tracking_uri=uri, progress=False, backend=backend)
        assert set(table.attrs["runs"]["action"]) == {"ran"}
        curves[backend] = _curves(uri, "tiny-ray")
        if backend == "ray":  # a rerun on Ray skips every finished pair, as with processes
            again = alloop.compare(path, jobs=2, tracking_uri=uri, progress=False, backend="ray")
            assert set(again.attrs["runs"]["action"]) == {"skipped"}
    assert sorted(curves["ray"]) == [(s, k) for s in ("entropy", "random") for k in (0, 1)]
    assert all(len(c) == 3 for c in curves["ray"].values())
    assert curves["ray"] == curves["process"]  # exact: same labels bought, same floats


def test_compare_rejects_an_unknown_backend(tmp_path):
    import alloop.compare

    with pytest.raises(ValueError, match="backend must be one of"):
        alloop.compare(Path(tmp_path / "missing.yaml"), backend="dask")


# ---------------------------------------------------------------------- in the loop
@pytest.mark.parametrize("name", ["sld", "entropy"])
def test_a_loop_scored_on_ray_buys_the_labels_of_an_in_process_loop(cluster, name):
    from sklearn.datasets import load_iris

    from alloop import ActiveLoop, Pool
    from oracles import SimulatedOracle

    X, y = load_iris(return_X_y=True)
    asked = {}
    for backend, scoring in (("local", None), ("ray", RayScoring(batch_size=32))):
        pool = Pool(X)
        loop = ActiveLoop(
            pool,
            SoftmaxGLM(),
            name,
            SimulatedOracle(dict(zip(pool.ids, y))),
            settings=LoopSettings(initial=6, batch_size=3, rounds=3, progress=False),
            X_test=X,
            y_test=y,
            classes=[0, 1, 2],
            scoring=scoring,
        )
        result = loop.run()
        asked[backend] = (pool.ids[pool.labeled_indices()].tolist(),
                          result.curve["accuracy"].tolist())
    assert asked["ray"] == asked["local"]
