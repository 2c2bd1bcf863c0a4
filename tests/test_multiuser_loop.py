"""Multi-user active learning through the ordinary ActiveLoop: (user, item) pairs as the pool,
the hierarchical model, a real SQLite label store and a real MLflow SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alloop import ActiveLoop, LoopSettings
from alloop.loop import StoreNotEmptyError
from alloop.multiuser import (
    HierarchicalGLM,
    HierarchicalRegularity,
    PairPool,
    UserQuota,
    UserReport,
    pair_rows,
)
from alloop.store.label_store import LabelStore
from alloop.tracking.mlflow_tracker import MlflowTracker
from oracles.routing import UserRoutedOracle
from oracles.simulated import SimulatedOracle

N_USERS, N_ITEMS, D = 8, 15, 3


def world(seed=0):
    """Users share a weight vector up to personal deviations; each rates their own items."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=D)
    W = w + 0.5 * rng.normal(size=(N_USERS, D))
    b = 0.5 * rng.normal(size=N_USERS)

    def rows(per_user):
        users = np.repeat(np.arange(N_USERS), per_user)
        X = rng.normal(size=(users.size, D))
        y = (X * W[users]).sum(1) + b[users] + 0.3 * rng.normal(size=users.size)
        return pair_rows(X, users), y

    X, y = rows(N_ITEMS)
    features, users = X[:, 1:], X[:, 0].astype(int)
    names = [f"u{u}" for u in range(N_USERS)]
    items = [f"m{i}" for i in range(users.size)]
    pool = PairPool(features, users, items, names)
    truth = dict(zip(pool.ids.tolist(), y.tolist(), strict=True))
    return pool, truth, rows(3), rows(4)


class CrashingOracle(SimulatedOracle):
    """Answers part of a round's queries, then fails (a crash between answers)."""

    def __init__(self, truth, crash_at_call, **kw):
        super().__init__(truth, **kw)
        self.calls, self.crash_at_call = 0, crash_at_call

    def request(self, queries, on_answer=None):
        self.calls += 1
        if self.calls == self.crash_at_call:
            super().request(queries[: len(queries) // 2], on_answer)  # committed, then the crash
            raise ConnectionError("oracle went away")
        return super().request(queries, on_answer)


def make_loop(pool, oracle, store, val, test, tracker=None, strategy="sld", quota=None,
              rounds=5, hyperparameters=None):
    initial = [pool.ids[np.flatnonzero(pool.users == u)[0]] for u in range(N_USERS - 2)]
    regularity = HierarchicalRegularity()
    kw = {} if hyperparameters is None else {"hyperparameters": hyperparameters}
    return ActiveLoop(
        pool, HierarchicalGLM("gaussian", n_users=N_USERS, **kw), strategy, oracle,
        LoopSettings(initial=initial, batch_size=6, rounds=rounds - 1, seed=1, progress=False),
        X_test=test[0], y_test=test[1], X_val=val[0], y_val=val[1],
        batch_rule=None if quota is None else UserQuota(quota), regularity=regularity,
        round_report=UserReport(*test, *val, regularity=regularity), store=store,
        tracker=tracker, run_name="mu",
    )


def test_end_to_end_with_mlflow_and_resume_after_a_crash(tmp_path):
    pool, truth, val, test = world()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rounds = 5

    # the reference: one uninterrupted run
    store = LabelStore(tmp_path / "full.sqlite")
    tracker = MlflowTracker("mu-full", tracking_uri=uri)
    full = make_loop(pool, SimulatedOracle(truth), store, val, test, tracker).run()
    assert list(full.curve["round"]) == list(range(rounds))
    assert full.curve["labels"].tolist() == [6, 12, 18, 24, 30]
    assert full.curve["users_with_labels"].iloc[0] == 6
    assert all(score > 0 for _, score in store.requests(1))  # SLD-scored queries
    users = UserReport(*test).table(full.model, pool)
    assert users.shape == (N_USERS, 4) and users["labels"].sum() == 30

    # MLflow: one nested run per round with aggregates, s0/s1 and the per-user table
    client = tracker.client
    children = client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{full.run_id}'"
    )
    assert sorted(int(r.data.tags["alloop.round"]) for r in children) == list(range(rounds))
    for run in children:
        m = run.data.metrics
        for key in ("rmse_mean_users", "rmse_median_users", "users_with_labels", "labels_min",
                    "labels_median", "labels_max", "s0", "s1", "validation_loss"):
            assert key in m, key
        files = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"users.csv", "queries.csv"} <= files
        local = client.download_artifacts(run.info.run_id, "users.csv", str(tmp_path))
        table = pd.read_csv(local)
        assert table["user"].tolist() == list(pool.user_names)
        assert table["labels"].sum() == m["labels"]
    parent = client.get_run(full.run_id)
    path = client.get_metric_history(full.run_id, "curve.s1")
    assert len(path) == rounds and parent.info.status == "FINISHED"
    s_path = full.curve[["s0", "s1"]].to_numpy()
    assert np.isfinite(s_path).all() and np.ptp(s_path, axis=0).max() > 0  # chosen per round

    # a run that crashes in round 3 (half its answers committed), then resumes
    store2 = LabelStore(tmp_path / "crash.sqlite")
    tracker2 = MlflowTracker("mu-crash", tracking_uri=uri)
    crashing = CrashingOracle(truth, crash_at_call=4)
    with pytest.raises(ConnectionError):
        make_loop(pool, crashing, store2, val, test, tracker2).run()
    assert sorted(store2.completed_rounds()) == [0, 1, 2]
    assert len(store2.answers(round=3)) == 3  # kept, not asked again
    resumed = make_loop(pool, SimulatedOracle(truth), store2, val, test,
                        MlflowTracker("mu-crash", tracking_uri=uri)).run(resume=True)
    assert resumed.run_id == store2.get_meta("run_id")
    cols = ["labels", "rmse_mean_users", "s0", "s1", "users_with_labels"]
    np.testing.assert_allclose(resumed.curve[cols].to_numpy(), full.curve[cols].to_numpy(),
                               rtol=1e-6)
    for r in range(rounds):  # the same queries in the same order; scores equal to rounding
        a, b = store.requests(r), store2.requests(r)
        assert [i for i, _ in a] == [i for i, _ in b]
        if r:
            np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)
    rounds_logged = tracker2.client.search_runs(
        [tracker2.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{resumed.run_id}'"
    )
    assert sorted(r.data.tags["alloop.round"] for r in rounds_logged) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("strategy", "options"),
    [("random", {}), ("sti", {}), ("ssi", {}), ("ssi", {"hyperparameters": "s1"})],
)
def test_strategies_and_per_user_quota(tmp_path, strategy, options):
    pool, truth, val, test = world(1)
    store = LabelStore(tmp_path / "s.sqlite")
    result = make_loop(pool, SimulatedOracle(truth), store, val, test, strategy=strategy,
                       quota=1, rounds=3, **options).run()
    for r in (1, 2):
        asked = [item for item, _ in store.requests(r)]
        users = pool.users[pool.index_of(asked)]
        assert len(asked) == 6 and len(set(users.tolist())) == 6  # at most one per user
    assert np.isfinite(result.curve["rmse_mean_users"]).all()


def test_annotators_are_users(tmp_path):
    """Each user is an annotator answering their own candidates; their answers are their rows."""
    pool, truth, val, test = world(2)
    oracles = {name: SimulatedOracle(truth, annotator="someone") for name in pool.user_names}
    store = LabelStore(tmp_path / "a.sqlite")
    loop = make_loop(pool, UserRoutedOracle(pool, oracles), store, val, test, strategy="random",
                     rounds=2)
    loop.run()
    answers = store.answers()
    assert {a.annotator for a in answers} <= set(pool.user_names)
    for a in answers:  # the answer's annotator is the candidate's user
        assert a.item_id.startswith(a.annotator + "/")
    positions = pool.index_of([a.item_id for a in answers])
    users = np.array([pool.user_index(a.annotator) for a in answers])
    np.testing.assert_array_equal(users, pool.users[positions])


def test_refuses_a_used_store_without_resume(tmp_path):
    pool, truth, val, test = world()
    store = LabelStore(tmp_path / "x.sqlite")
    make_loop(pool, SimulatedOracle(truth), store, val, test, strategy="random", rounds=1).run()
    with pytest.raises(StoreNotEmptyError, match="--resume"):
        make_loop(pool, SimulatedOracle(truth), store, val, test, strategy="random").run()


def test_torch_heads_run_in_the_loop_with_sld(tmp_path):
    """HierarchicalHeads is a model of the loop too: pair rows in, SLD by its SGDF tangents."""
    from alloop.multiuser import HierarchicalHeads

    pool, truth, val, test = world(3)
    store = LabelStore(tmp_path / "h.sqlite")
    model = HierarchicalHeads("gaussian", 0.0, 0.5, hidden=(4,), epochs=3, n_users=N_USERS)
    assert model.with_s([0.1, 0.2]).s.tolist() == [0.1, 0.2]
    result = ActiveLoop(
        pool, model, "sld", SimulatedOracle(truth),
        LoopSettings(initial=8, batch_size=4, rounds=2, seed=0, progress=False),
        X_test=test[0], y_test=test[1], batch_rule=UserQuota(1),
        round_report=UserReport(*test), store=store,
    ).run()
    assert result.curve["labels"].tolist() == [8, 12, 16]
    assert np.isfinite(result.curve["rmse_mean_users"]).all()
    assert all(score >= 0 for _, score in store.requests(1))
    for r in (1, 2):
        users = pool.users[pool.index_of([i for i, _ in store.requests(r)])]
        assert len(set(users.tolist())) == len(users) == 4
