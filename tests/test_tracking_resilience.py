"""ResilientTracker: retries with backoff, buffering while the server is down, ordered replay.

The retry/buffer logic is checked against a fake tracker whose "server" is down during given
windows of a fake clock (so no test sleeps). MlflowWriter's repeat-safety and the error
classification run against real MLflow stores and a real closed port.
"""

from __future__ import annotations

import os
import warnings

import pandas as pd
import pytest

from alloop.tracking import (
    Backoff,
    MlflowTracker,
    MlflowWriter,
    ResilientTracker,
    RoundReport,
    TrackingUnavailableWarning,
    is_unreachable,
)
from alloop.tracking.mlflow_http import HTTP_DEFAULTS, mlflow_http_defaults
from alloop.tracking.resilient import FINISH_SECONDS_ENV, RETRY_SECONDS_ENV


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class FlakyTracker:
    """Records what reaches its 'server', which is down during [start, end) windows."""

    def __init__(self, clock: FakeTime, down: list[tuple[float, float]] = (), logged=()) -> None:
        self.time = clock
        self.down = list(down)
        self.received: list[tuple[str, object]] = []
        self.logged = set(logged)
        self.attempts = 0

    def _reach(self) -> None:
        self.attempts += 1
        if any(a <= self.time.now < b for a, b in self.down):
            raise ConnectionRefusedError(111, "Connection refused")

    def start(self, run_name, params, resume_run_id=None):
        self._reach()
        self.received.append(("start", run_name))
        return "run-1"

    def logged_rounds(self):
        self._reach()
        return set(self.logged)

    def log_round(self, report):
        self._reach()
        self.received.append(("round", report.round))
        self.logged.add(report.round)

    def finish(self, curve, metric, model, status="FINISHED"):
        self._reach()
        self.received.append(("finish", status))


def report(r: int) -> RoundReport:
    return RoundReport(r, 10 + r, {"accuracy": 0.5 + r / 100})


def resilient(inner: FlakyTracker, clock: FakeTime, **budgets) -> ResilientTracker:
    backoff = Backoff(**{"seconds": 15.0, "finish_seconds": 60.0, **budgets})
    return ResilientTracker(inner, is_unreachable, backoff=backoff, where="http://tracking:5000",
                            sleep=clock.sleep, clock=clock.clock)


def unavailable(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrackingUnavailableWarning)]


@pytest.fixture
def caught():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield record


def test_backoff_doubles_caps_and_ends_on_the_budget():
    b = Backoff(first_delay=0.5, max_delay=4.0)
    pauses = list(b.delays(15.0))
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 3.5]
    assert sum(pauses) == 15.0
    assert list(b.delays(0.0)) == []


def test_a_blip_is_retried_with_doubling_pauses_and_not_buffered(caught):
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(0.0, 2.5)])
    tracker = resilient(inner, clock)
    tracker.log_round(report(0))
    assert clock.pauses == [0.5, 1.0, 2.0]  # attempts at t = 0, 0.5, 1.5 fail; 3.5 succeeds
    assert inner.received == [("round", 0)]
    assert tracker.pending == 0
    assert unavailable(caught) == []


def test_an_outage_buffers_rounds_warns_once_and_replays_them_in_order(caught):
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(10.0, 100.0)])
    tracker = resilient(inner, clock)
    assert tracker.start("entropy-seed0", {}, None) == "run-1"
    tracker.log_round(report(0))
    clock.now = 10.0
    tracker.log_round(report(1))  # down: retried for the whole 15 s budget, then kept
    assert sum(clock.pauses) == pytest.approx(15.0)
    assert tracker.pending == 1
    waited = len(clock.pauses)
    tracker.log_round(report(2))  # known down: one quick attempt each, no more waiting
    tracker.log_round(report(3))
    assert len(clock.pauses) == waited
    assert tracker.pending == 3
    [message] = unavailable(caught)
    assert "http://tracking:5000" in message and "Connection refused" in message
    clock.now = 100.0
    tracker.log_round(report(4))
    assert inner.received == [("start", "entropy-seed0")] + [("round", r) for r in range(5)]
    assert tracker.pending == 0
    tracker.finish(pd.DataFrame(), "accuracy", None)
    assert inner.received[-1] == ("finish", "FINISHED")
    assert len(unavailable(caught)) == 1


def test_finish_waits_longer_for_the_server_and_logs_everything_buffered(caught):
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(0.0, 50.0)])  # longer than a round's 15 s budget
    tracker = resilient(inner, clock)
    tracker.start("run", {}, None)
    assert tracker.run_id is None  # opened later
    tracker.log_round(report(0))
    tracker.log_round(report(1))
    tracker.finish(pd.DataFrame(), "accuracy", None)  # 60 s budget: the server is back at 50
    assert inner.received == [("start", "run"), ("round", 0), ("round", 1), ("finish", "FINISHED")]
    assert tracker.run_id == "run-1"
    assert tracker.pending == 0
    assert len(unavailable(caught)) == 1


def test_finish_gives_up_without_raising_and_says_how_to_log_the_rest(caught):
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(5.0, float("inf"))])
    tracker = resilient(inner, clock, seconds=2.0, finish_seconds=20.0)
    tracker.start("run", {}, None)
    tracker.log_round(report(0))
    clock.now = 5.0
    tracker.log_round(report(1))
    tracker.log_round(report(2))
    before = clock.now
    tracker.finish(pd.DataFrame(), "accuracy", None)  # returns: the loop's result is not lost
    assert clock.now - before == pytest.approx(20.0)
    assert inner.received == [("start", "run"), ("round", 0)]
    assert tracker.pending == 3
    first, last = unavailable(caught)
    assert "rounds [1, 2]" in last and "--resume" in last and "http://tracking:5000" in last


def test_a_failed_or_interrupted_loop_waits_only_a_round_budget_at_finish(caught):
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(0.0, float("inf"))])
    tracker = resilient(inner, clock, seconds=2.0, finish_seconds=50.0)
    tracker.start("run", {}, None)
    before = clock.now
    tracker.finish(pd.DataFrame(), "accuracy", None, status="FAILED")
    assert clock.now - before == pytest.approx(2.0)
    assert inner.received == []
    assert "after 2 s" in unavailable(caught)[-1]


def test_rounds_relogged_on_resume_while_down_skip_those_the_server_has():
    clock = FakeTime()
    inner = FlakyTracker(clock, down=[(0.0, 30.0)], logged={0, 1})
    tracker = resilient(inner, clock, seconds=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingUnavailableWarning)
        tracker.start("run", {}, "run-1")
        assert tracker.logged_rounds() == set()  # unknown while down: the loop re-logs all
        for r in (0, 1, 2):
            tracker.log_round(report(r))
    clock.now = 30.0
    tracker.log_round(report(3))
    assert inner.received == [("start", "run"), ("round", 2), ("round", 3)]


def test_logged_rounds_when_the_server_answers():
    clock = FakeTime()
    inner = FlakyTracker(clock, logged={0, 3})
    assert resilient(inner, clock).logged_rounds() == {0, 3}


def test_an_error_retrying_cannot_fix_is_raised_at_once_and_dropped():
    clock = FakeTime()
    inner = FlakyTracker(clock)
    tracker = resilient(inner, clock)
    tracker.start("run", {}, None)
    broken = RoundReport(1, 11, {"accuracy": 0.5})

    def refuse(rep):
        if rep is broken:
            raise ValueError("metric 'accuracy' is not a number")
        FlakyTracker.log_round(inner, rep)

    inner.log_round = refuse
    with pytest.raises(ValueError, match="not a number"):
        tracker.log_round(broken)
    assert clock.pauses == []
    tracker.log_round(report(2))
    assert inner.received == [("start", "run"), ("round", 2)]


def test_budgets_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(RETRY_SECONDS_ENV, "2.5")
    monkeypatch.setenv(FINISH_SECONDS_ENV, "0")
    assert Backoff.from_env() == Backoff(seconds=2.5, finish_seconds=0.0)
    monkeypatch.setenv(RETRY_SECONDS_ENV, "soon")
    with pytest.raises(ValueError, match=RETRY_SECONDS_ENV):
        Backoff.from_env()


# ------------------------------------------------------------------ real MLflow pieces
def closed_port() -> int:
    from alloop.services.postgres import free_port

    return free_port()  # nothing listens there


def test_errors_are_classified_from_real_mlflow_failures():
    import mlflow
    from mlflow.exceptions import MlflowException, RestException

    uri = f"http://127.0.0.1:{closed_port()}"
    with mlflow_http_defaults(uri), pytest.raises(MlflowException) as refused:
        mlflow.MlflowClient(uri).get_experiment_by_name("x")
    assert is_unreachable(refused.value)
    assert is_unreachable(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "db"}))
    assert not is_unreachable(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}))
    assert not is_unreachable(MlflowException("bad key", error_code=1000))  # INVALID_PARAMETER_VALUE
    assert not is_unreachable(ValueError("x"))


def test_http_defaults_are_scoped_and_never_override_the_user(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    with mlflow_http_defaults("http://host:5000"):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    with mlflow_http_defaults("sqlite:///x.db"):
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_mlflow_tracker_on_a_dead_server_buffers_everything_and_never_raises(caught):
    tracker = MlflowTracker("dead", f"http://127.0.0.1:{closed_port()}",
                            backoff=Backoff(seconds=0.2, finish_seconds=0.2, first_delay=0.1))
    assert tracker.start("run", {"a": 1}, None) is None
    assert tracker.logged_rounds() == set()
    tracker.log_round(report(0))
    tracker.finish(pd.DataFrame({"round": [0], "labels": [10], "accuracy": [0.5]}), "accuracy", None)
    assert tracker.pending == 4  # start, sync, round 0, finish
    assert len(unavailable(caught)) == 2  # "unreachable" once, then "gave up" at finish


def test_a_half_logged_round_is_completed_not_logged_twice(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MlflowWriter("half", uri)
    run_id = writer.start("run", {"a": 1}, None)
    real = writer.client.log_artifact
    calls = []

    def drop_first(*args, **kwargs):  # the server goes away just before the artifact upload
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return real(*args, **kwargs)

    writer.client.log_artifact = drop_first
    rep = RoundReport(0, 10, {"accuracy": 0.75},
                      pd.DataFrame({"item_id": ["a"], "score": [1.0], "label": [1]}))
    with pytest.raises(ConnectionRefusedError):
        writer.log_round(rep)
    writer.log_round(rep)
    client = mlflow.MlflowClient(uri)
    children = client.search_runs([writer.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    history = client.get_metric_history(children[0].info.run_id, "accuracy")
    assert [(m.value, m.step) for m in history] == [(0.75, 0)]
    assert [a.path for a in client.list_artifacts(children[0].info.run_id)] == ["queries.csv"]
    assert writer.logged_rounds() == {0}
