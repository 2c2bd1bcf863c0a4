"""Ask / tell: ``loop.query()`` and ``loop.teach(answers)`` on a durable SQLite store.

The queries are in the store when ``query`` returns: a process killed with SIGKILL between
``query`` and ``teach`` loses nothing, and a new process on the same store gets the same open
queries back, or teaches their answers directly.
"""

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
from alloop.loop import InvalidAnswerError
from alloop.models import SoftmaxGLM
from oracles import Answer, SimulatedOracle

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(initial=10, batch_size=5, rounds=3, progress=False)


def _data():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _loop(store, oracle=None, **settings):
    X, y = _data()
    return ActiveLoop(Pool(X), SoftmaxGLM(s=0.0), "margin", oracle,
                      LoopSettings(**{**SETTINGS, **settings}), classes=[0, 1, 2], store=store,
                      X_test=X, y_test=y)


def _answers(ids):
    _, y = _data()
    return [Answer(i, int(y[int(i)])) for i in ids]


def test_query_and_teach_retrace_run(tmp_path):
    """Driving the rounds by hand gives the rounds ``run()`` gives with the same answers."""
    X, y = _data()
    ran_store = LabelStore(tmp_path / "ran.sqlite")
    ran = _loop(ran_store, SimulatedOracle(dict(zip(Pool(X).ids, y)))).run()
    loop = _loop(LabelStore(tmp_path / "s.sqlite"))
    rounds = []
    while queries := loop.query():
        assert loop.query().ids == queries.ids  # asked again before teach: the same queries
        loop.teach(_answers(queries.ids))
        rounds.append(queries.round)
    assert rounds == [0, 1, 2, 3] and queries.stop_reason == "max_rounds"
    result = loop.finish()
    assert result.stop_reason == "max_rounds"
    assert result.curve["labels"].tolist() == ran.curve["labels"].tolist() == [10, 15, 20, 25]
    assert np.allclose(result.curve["accuracy"], ran.curve["accuracy"])
    for r in rounds:
        assert loop.store.requests(r) == ran_store.requests(r)


def test_teach_refuses_what_was_not_asked_and_keeps_the_rest(tmp_path):
    store = LabelStore(tmp_path / "s.sqlite")
    loop = _loop(store)
    with pytest.raises(ValueError, match="no open queries: call loop.query"):
        loop.teach([])
    queries = loop.query()
    not_asked = next(i for i in Pool(_data()[0]).ids if i not in queries.ids)
    with pytest.raises(InvalidAnswerError, match=f"item '{not_asked}' was not asked"):
        loop.teach(_answers(queries.ids) + _answers([not_asked]))
    assert sorted(store.current_labels()) == sorted(queries.ids)


def test_run_without_an_oracle_says_to_use_query_and_teach():
    with pytest.raises(ValueError, match=r"loop.query\(\), then loop.teach"):
        _loop(LabelStore(":memory:")).run()


CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from test_ask_tell import _answers, _loop
    from alloop import LabelStore

    loop = _loop(LabelStore(sys.argv[1]))
    for _ in range(int(sys.argv[2])):  # finished rounds before the one killed
        loop.teach(_answers(loop.query().ids))
    queries = loop.query()
    print(json.dumps({{"round": queries.round, "ids": queries.ids}}), flush=True)
    time.sleep(600)  # killed here, between query and teach
    """
)


def _query_then_sigkill(store_path: Path, rounds_before: int) -> dict:
    """A child process queries, prints the queries and is killed with SIGKILL before teach."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(ROOT / "tests")), str(store_path),
         str(rounds_before)],
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
    return json.loads(line)


def test_killed_after_query_a_new_process_gets_the_same_queries(tmp_path):
    path = tmp_path / "labels.sqlite"
    asked = _query_then_sigkill(path, rounds_before=1)
    assert asked["round"] == 1 and len(asked["ids"]) == 5
    loop = _loop(LabelStore(path))
    again = loop.query()
    assert (again.round, again.ids) == (asked["round"], asked["ids"])  # not new ones
    row = loop.teach(_answers(again.ids))
    assert row["round"] == 1 and row["labels"] == 15
    # the same as an uninterrupted run: the next round asks what it would have asked
    whole = _loop(LabelStore(tmp_path / "whole.sqlite"))
    for _ in range(2):
        whole.teach(_answers(whole.query().ids))
    assert loop.query().ids == whole.query().ids


def test_killed_after_query_a_new_process_teaches_those_answers(tmp_path):
    path = tmp_path / "labels.sqlite"
    asked = _query_then_sigkill(path, rounds_before=0)
    assert asked["round"] == 0 and len(asked["ids"]) == 10
    loop = _loop(LabelStore(path))
    row = loop.teach(_answers(asked["ids"]))  # no query in this process
    assert row["round"] == 0 and row["labels"] == 10
    store = LabelStore(path)
    assert sorted(store.current_labels()) == sorted(asked["ids"])
    assert sorted(store.completed_rounds()) == [0]
