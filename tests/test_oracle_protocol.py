"""The declared oracle protocol: every oracle has what the loop uses, no signature sniffing,
and the label rule is applied by alloop.aggregation (the store only stores)."""

import pytest

from alloop.aggregation import LABEL_RULES, aggregate
from alloop.records import Answer, Query
from alloop.store import open_store
from oracles import Oracle, OracleBase, SimulatedOracle
from oracles.annotators import MultiAnnotatorOracle
from oracles.base import request_answers
from oracles.files import FileExchangeOracle
from oracles.label_studio import LabelStudioOracle
from oracles.people import PeopleOracle
from oracles.terminal import TerminalOracle
from oracles.web import WebOracle


def every_oracle(tmp_path):
    truth = {"a": 0, "b": 1}
    return {
        "simulated": SimulatedOracle(truth),
        "terminal": TerminalOracle([0, 1], prompt=lambda message, timeout: "q"),
        "files": FileExchangeOracle(tmp_path / "exchange", classes=[0, 1], timeout=0,
                                    poll_interval=0),
        "web": WebOracle(["ann"], tokens=tmp_path / "tokens.sqlite", port=0, classes=[0, 1],
                         timeout=0, announce=False),
        "label-studio": LabelStudioOracle(classes=[0, 1], api=object()),
        "team": MultiAnnotatorOracle({"ann": SimulatedOracle(truth), "bob": SimulatedOracle(truth)}),
    }


def test_every_oracle_declares_what_the_loop_uses(tmp_path):
    oracles = every_oracle(tmp_path)
    try:
        for name, oracle in oracles.items():
            assert isinstance(oracle, Oracle) and isinstance(oracle, OracleBase), name
            assert oracle.quit_requested is False, name
            assert oracle.interactive is (name == "terminal"), name
            oracle.set_assignment_sink(None)
            oracle.keep_assignment({})
        people = {n for n, o in oracles.items() if isinstance(o, PeopleOracle)}
        assert people == {"terminal", "files", "web", "label-studio"}
        for name in people:  # the shared wait settings, on the base
            oracle = oracles[name]
            assert (oracle.min_share, oracle.timed_out) == (1.0, False), name
            assert oracle.needed(3) == 3 and oracle.display is not None, name
    finally:
        for oracle in oracles.values():
            oracle.close()


@pytest.mark.parametrize("make", [
    lambda tmp: TerminalOracle([0, 1], min_share=2.0),
    lambda tmp: FileExchangeOracle(tmp, classes=[0, 1], min_share=2.0),
    lambda tmp: WebOracle(["ann"], tokens=tmp / "t.sqlite", classes=[0, 1], min_share=2.0),
    lambda tmp: LabelStudioOracle(classes=[0, 1], api=object(), min_share=2.0),
])
def test_people_oracles_share_the_check_of_their_wait_settings(tmp_path, make):
    with pytest.raises(ValueError, match=r"min_share must be in \[0, 1\]; got 2.0"):
        make(tmp_path)


def test_the_terminal_quit_reaches_the_loop_through_the_protocol():
    person = TerminalOracle([0, 1], prompt=lambda message, timeout: "q")
    team = MultiAnnotatorOracle({"ann": person, "bob": SimulatedOracle({"a": 0})}, k=2)
    assert team.interactive and not team.parallel
    assert [a.annotator for a in request_answers(team, [Query("a")], None)] == ["bob"]
    assert person.quit_requested and team.quit_requested


class FirstProtocol(OracleBase):
    def request(self, queries):  # no on_answer
        return []


class FailsInside(OracleBase):
    def request(self, queries, on_answer=None):
        raise TypeError("on_answer must return None or str")  # its own, naming on_answer too


def test_an_oracle_without_on_answer_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"FirstProtocol.request\(queries\) does not take "
                                        r"on_answer: .* Subclass oracles.base.OracleBase"):
        request_answers(FirstProtocol(), [Query("a")], on_answer=None)
    # an error inside request is the oracle's own, passed on unchanged
    with pytest.raises(TypeError, match="^on_answer must return None or str$"):
        request_answers(FailsInside(), [Query("a")], on_answer=None)


class Closes(SimulatedOracle):
    def close(self):
        self.closed = True
        if self.annotator == "ann":
            raise OSError("the page would not stop")


def test_a_team_closes_every_member_and_reports_assignments_through_its_sink():
    ann, bob = Closes({"a": 0}, annotator="ann"), Closes({"a": 0}, annotator="bob")
    team = MultiAnnotatorOracle({"ann": ann, "bob": bob}, k=2)
    seen = []
    team.set_assignment_sink(seen.append)
    team.request([Query("a")])
    assert seen == [team.assignment] and sorted(seen[0]["a"]) == ["ann", "bob"]
    with pytest.raises(OSError, match="would not stop"):
        team.close()
    assert ann.closed and bob.closed  # bob is closed although ann failed


def test_the_store_returns_answers_and_aggregation_applies_the_rule(tmp_path):
    store = open_store(tmp_path / "labels.sqlite")
    log = [("x", "ann", 1, 0), ("x", "bob", 2, 0), ("x", "cy", 2, 1), ("y", "ann", 0, 1),
           ("y", "ann", None, 2)]
    for item, who, label, round_ in log:
        kind = "label" if label is not None else "skip"
        store.append(Answer(item, label, annotator=who, kind=kind), round=round_)
    assert [a.round for a in store.answers(max_round=1)] == [0, 0, 1, 1]
    assert aggregate(store.answers(), "latest") == {"x": 2}  # ann withdrew y by a skip
    assert aggregate(store.answers(max_round=1), "latest") == {"x": 2, "y": 0}
    assert aggregate(store.answers(max_round=0), "majority") == {"x": 2}  # tie: the latest vote
    for rule in LABEL_RULES:  # the store's convenience is the same function
        for max_round in (None, 0, 1):
            assert store.current_labels(max_round=max_round, rule=rule) == aggregate(
                store.answers(max_round=max_round), rule)
    with pytest.raises(ValueError, match="unknown label rule 'vote'; expected latest, majority"):
        store.current_labels(rule="vote")
    store.close()


class RequestOnly:
    """An oracle of the first protocol's shape: request and nothing else, no base class."""

    def request(self, queries, on_answer=None):
        return []


def test_the_loop_and_a_team_refuse_an_oracle_missing_the_protocol_with_the_fix():
    import numpy as np

    from alloop import ActiveLoop, Pool
    from alloop.models import LinearGLM

    fix = r"RequestOnly is not an Oracle: it lacks quit_requested, .* Subclass oracles.base.OracleBase"
    with pytest.raises(TypeError, match=fix):
        ActiveLoop(Pool(np.eye(4)), LinearGLM(), "random", RequestOnly())
    with pytest.raises(TypeError, match=fix):
        MultiAnnotatorOracle({"ann": RequestOnly()})
