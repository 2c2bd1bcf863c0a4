"""The portfolio's arm records across a resume: a run stopped, or killed with SIGKILL, after round k
and resumed on its SQLite store asks what the uninterrupted run asks and logs the same arm and
arm probabilities every round (to MLflow as well), through ``run(resume=True)`` and through
``query``/``teach`` in a new process."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from alloop import ActiveLoop, LabelStore, LoopSettings, Pool
from alloop.models import SoftmaxGLM
from oracles import Answer, SimulatedOracle

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["margin", "coreset", "random"]
ROUNDS = 6


def _data():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _loop(store, rounds=ROUNDS, oracle=True, tracker=None):
    X, y = _data()
    pool = Pool(X)
    return ActiveLoop(
        pool, SoftmaxGLM(s=0.0), "portfolio",
        SimulatedOracle(dict(zip(pool.ids, y))) if oracle else None,
        LoopSettings(initial=9, batch_size=4, rounds=rounds, seed=5, progress=False),
        classes=[0, 1, 2], store=store, X_test=X, y_test=y, X_val=X[::3], y_val=y[::3],
        tracker=tracker,
        # a large γ and a lax switching test: the lead moves within a few rounds
        strategy_params={"arms": ARMS, "gamma": 0.3, "confidence": 0.5, "min_rounds": 2},
    )


def _answers(ids):
    _, y = _data()
    return [Answer(i, int(y[int(i)])) for i in ids]


def _history(path: Path):
    """Every round's requests and its logged portfolio values, from the store."""
    with LabelStore(path) as store:
        rounds = store.completed_rounds()
        requests = [store.requests(r) for r in sorted(rounds)]
        logged = [{k: v for k, v in d["metrics"].items() if k.startswith("portfolio")}
                  for _, d in sorted(rounds.items())]
    return requests, logged


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "whole.sqlite"
    _loop(LabelStore(path)).run()
    requests, logged = _history(path)
    assert len(requests) == ROUNDS + 1
    # the lead moved away from the first arm, so a portfolio restarted from nothing would differ
    p = np.array([[row[f"portfolio_p_{a}"] for a in ARMS] for row in logged[1:]])
    assert not np.allclose(p[-1], p[0])
    return requests, logged


def test_a_run_stopped_after_round_k_and_resumed_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    from alloop.tracking import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "labels.sqlite"
    first = _loop(LabelStore(path), rounds=3, tracker=MlflowTracker("pf", tracking_uri=uri))
    assert first.run().stop_reason == "max_rounds"
    # a new loop (a new Portfolio, fresh weights) on the same store, as alloop run --resume builds
    resumed = _loop(LabelStore(path), tracker=MlflowTracker("pf", tracking_uri=uri))
    result = resumed.run(resume=True)
    assert result.curve["round"].tolist() == list(range(ROUNDS + 1))
    assert _history(path) == uninterrupted  # same picks, same arm and probabilities, exactly

    whole = _loop(LabelStore(tmp_path / "whole.sqlite"), tracker=MlflowTracker("pf", tracking_uri=uri))
    whole.run()
    got, want = _mlflow_rounds(resumed.tracker, resumed.run_id), _mlflow_rounds(whole.tracker, whole.run_id)
    assert sorted(got) == list(range(ROUNDS + 1))
    assert got == want == {r: row for r, row in enumerate(uninterrupted[1])}


def _mlflow_rounds(tracker, parent):
    """round → the portfolio values logged to MLflow with that round (its nested run)."""
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    return {int(run.data.tags["alloop.round"]): {k: v for k, v in run.data.metrics.items()
                                                 if k.startswith("portfolio")} for run in runs}


RUN_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_portfolio_resume import _loop
    from alloop import LabelStore

    loop = _loop(LabelStore(sys.argv[1]))
    append, count = loop.store.append, [0]

    def append_then_die(answer, round):
        seq = append(answer, round)
        if round == int(sys.argv[2]):
            count[0] += 1
            if count[0] == 2:  # two of the round's four answers are stored
                os.kill(os.getpid(), signal.SIGKILL)
        return seq

    loop.store.append = append_then_die
    loop.run()
    """
)


def test_a_run_killed_mid_round_and_resumed_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    path = tmp_path / "labels.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", RUN_CHILD.format(tests=str(ROOT / "tests")),
                            str(path), "3"], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr
    with LabelStore(path) as store:
        assert sorted(store.completed_rounds()) == [0, 1, 2] and len(store.answers(round=3)) == 2
    _loop(LabelStore(path)).run(resume=True)
    assert _history(path) == uninterrupted


ASK_CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from test_portfolio_resume import _answers, _loop
    from alloop import LabelStore

    loop = _loop(LabelStore(sys.argv[1]), oracle=False)
    for _ in range(int(sys.argv[2])):  # finished rounds before the one killed
        loop.teach(_answers(loop.query().ids))
    queries = loop.query()
    print(json.dumps({{"round": queries.round, "ids": queries.ids}}), flush=True)
    time.sleep(600)  # killed here, between query and teach
    """
)


def test_query_killed_before_teach_then_a_new_process_continues_the_same_portfolio(tmp_path, uninterrupted):
    path = tmp_path / "labels.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", ASK_CHILD.format(tests=str(ROOT / "tests")), str(path), "3"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        line = child.stdout.readline()
        assert line, "the child printed no queries"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    asked = json.loads(line)
    assert asked["round"] == 3
    loop = _loop(LabelStore(path), oracle=False)
    rounds = []
    while queries := loop.query():
        rounds.append(queries.round)
        loop.teach(_answers(queries.ids))
    assert rounds == [3, 4, 5, 6] and queries.stop_reason == "max_rounds"
    assert _history(path) == uninterrupted
