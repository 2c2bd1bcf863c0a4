"""Tracker.find_runs / metric_history / discard_run / MlflowTracker.existing on a real MLflow
SQLite store, checked against what the MLflow client itself reads back."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import Metric, ViewType

from alloop.tracking import MlflowTracker, NullTracker, RunRecord


def test_find_runs_returns_the_tagged_runs_oldest_first_as_plain_records(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("reads", uri)
    with tracker.one_off_run("a", tags={"alloop": "full_data"}) as a:
        a.log_params({"seed": 0})
        a.log_metrics({"accuracy": 0.5})
    with pytest.raises(RuntimeError):
        with tracker.one_off_run("b", tags={"alloop": "full_data"}) as b:
            b.log_params({"seed": 1})
            raise RuntimeError("killed")
    with tracker.one_off_run("other", tags={"alloop": "summary"}) as other:
        pass
    found = tracker.find_runs("full_data")
    assert found == [
        RunRecord(a.run_id, "FINISHED", {"seed": "0"}, {"accuracy": 0.5}),
        RunRecord(b.run_id, "FAILED", {"seed": "1"}, {}),
    ]
    assert [r.run_id for r in tracker.find_runs("summary")] == [other.run_id]
    assert tracker.find_runs("loop") == []


def test_metric_history_keeps_the_last_value_logged_at_each_step(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("reads", uri)
    client = mlflow.MlflowClient(uri)
    with tracker.one_off_run("curve", tags={"alloop": "loop"}) as run:
        # step 20 logged twice (a resumed finish): the later timestamp wins whatever its order
        client.log_batch(run.run_id, metrics=[
            Metric("curve.accuracy", 0.9, 2000, 20), Metric("curve.accuracy", 0.6, 1000, 10),
            Metric("curve.accuracy", 0.7, 1000, 20),
        ])
    assert tracker.metric_history(run.run_id, "curve.accuracy") == {10: 0.6, 20: 0.9}
    assert tracker.metric_history(run.run_id, "curve.rmse") == {}


def test_discard_run_deletes_the_parent_and_its_nested_runs_only(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("reads", uri)
    with tracker.one_off_run("parent", tags={"alloop": "loop"}) as parent:
        pass
    with tracker.one_off_run("round-000", parent_run_id=parent.run_id) as child:
        pass
    with tracker.one_off_run("kept", tags={"alloop": "loop"}) as kept:
        pass
    tracker.discard_run(parent.run_id)
    assert [r.run_id for r in tracker.find_runs("loop")] == [kept.run_id]
    client = mlflow.MlflowClient(uri)
    deleted = client.search_runs([tracker.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert sorted(r.info.run_id for r in deleted) == sorted([parent.run_id, child.run_id])


def test_existing_refuses_a_missing_experiment_naming_those_there_and_creates_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowTracker("present", uri).find_runs("loop")  # creates "present"
    with pytest.raises(ValueError, match=r"no MLflow experiment 'absent' at sqlite:.*'present'.*--tracking-uri"):
        MlflowTracker.existing("absent", uri)
    assert mlflow.MlflowClient(uri).get_experiment_by_name("absent") is None
    assert MlflowTracker.existing("present", uri).find_runs("loop") == []


def test_null_tracker_finds_nothing():
    tracker = NullTracker()
    assert tracker.find_runs("loop") == [] and tracker.metric_history("x", "curve.accuracy") == {}
    assert tracker.discard_run("x") is None
