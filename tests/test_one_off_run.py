"""Tracker.one_off_run: a run of its own, on a real MLflow store, FINISHED or FAILED."""

from __future__ import annotations

import mlflow
import pytest

from alloop.tracking.base import NullTracker
from alloop.tracking.mlflow_tracker import MlflowTracker


def test_one_off_run_logs_params_metrics_artifacts_and_finishes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("one-off", uri)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with tracker.one_off_run("select-greedy", tags={"alloop": "select"}) as run:
        run.log_params({"selection": {"method": "greedy"}, "seed": 3})
        run.log_metrics({"accuracy": 0.75})
        run.log_artifact(note)
        run.set_tags({"extra": "yes"})
    got = mlflow.MlflowClient(tracking_uri=uri).get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "select-greedy"
    assert got.data.params == {"selection.method": "greedy", "seed": "3"}
    assert got.data.metrics == {"accuracy": 0.75}
    assert got.data.tags["alloop"] == "select" and got.data.tags["extra"] == "yes"
    names = [f.path for f in mlflow.MlflowClient(tracking_uri=uri).list_artifacts(run.run_id)]
    assert names == ["note.txt"]


def test_one_off_run_fails_on_error_and_nests_under_a_parent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("one-off", uri)
    with tracker.one_off_run("parent") as parent:
        pass
    with pytest.raises(RuntimeError, match="boom"):
        with tracker.one_off_run("child", parent_run_id=parent.run_id) as child:
            raise RuntimeError("boom")
    client = mlflow.MlflowClient(tracking_uri=uri)
    got = client.get_run(child.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["mlflow.parentRunId"] == parent.run_id
    tracker.tag_run(parent.run_id, {"alloop.warning": "late"})
    tracker.existing_run(parent.run_id).log_metrics({"late_metric": 2.0})
    tracker.end_run(child.run_id, "KILLED")
    assert client.get_run(parent.run_id).data.tags["alloop.warning"] == "late"
    assert client.get_run(parent.run_id).data.metrics == {"late_metric": 2.0}
    assert client.get_run(child.run_id).info.status == "KILLED"


def test_null_tracker_one_off_run_records_nothing():
    with NullTracker().one_off_run("x") as run:
        run.log_metrics({"a": 1.0})
    assert run.run_id is None
