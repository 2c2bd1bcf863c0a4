"""An annotator speaks only for themselves: a line in ana's file that names bob is refused,
reported, and nothing of it reaches the label store."""

from alloop.store import open_store
from oracles import OracleBase, Query
from oracles.annotators import MultiAnnotatorOracle
from oracles.files import FileExchangeOracle


def test_ana_cannot_vote_as_bob_through_her_file(tmp_path):
    store = open_store(tmp_path / "labels.sqlite")
    files = {p: FileExchangeOracle(tmp_path / p, classes=[0, 1], annotator=p, timeout=0,
                                   poll_interval=0) for p in ("ana", "bob")}
    files["ana"].answers_path(0).write_text(
        "item_id,label,annotator\ni0,1,ana\ni1,1,bob\ni1,0,\n")  # line 3 claims to be bob
    files["bob"].answers_path(0).write_text("item_id,label\ni0,0\n")
    team = MultiAnnotatorOracle(files, k=2)

    def commit(answer):
        store.append(answer, round=0)

    team.request([Query("i0"), Query("i1")], on_answer=commit)
    stored = sorted((a.item_id, a.annotator, a.label) for a in store.answers())
    assert stored == [("i0", "ana", 1), ("i0", "bob", 0), ("i1", "ana", 0)]  # no bob vote on i1
    assert [str(p) for p in files["ana"].problems] == [
        "round-0-answers.csv:3: this folder's answers are 'ana''s; a line naming 'bob' is not "
        "taken (each annotator answers through their own folder)"
    ]
    store.close()


class Claims(OracleBase):
    """An oracle (a page, a tool's export) whose answers claim another author."""

    annotator = "ana"

    def __init__(self):
        self.refused = []

    def request(self, queries, on_answer=None):
        from oracles import Answer

        for q in queries:
            problem = on_answer(Answer(q.item_id, 1, "bob"))
            if problem:
                self.refused.append(problem)
        return []


def test_an_oracle_naming_another_configured_annotator_is_refused_and_nothing_stored(tmp_path):
    from oracles import SimulatedOracle

    store = open_store(tmp_path / "labels.sqlite")
    ana = Claims()
    team = MultiAnnotatorOracle({"ana": ana, "bob": SimulatedOracle({"i0": 0}, annotator="bob")}, k=2)
    team.request([Query("i0")], on_answer=lambda a: store.append(a, round=0) and None)
    assert [(a.item_id, a.annotator, a.label) for a in store.answers()] == [("i0", "bob", 0)]
    assert ana.refused == ["the answer names annotator 'bob' but came from 'ana''s oracle, which "
                           "speaks only for 'ana'; 'bob' answers through their own"]
    store.close()


def test_a_resumed_web_round_asks_only_the_kept_assignments(tmp_path):
    """The web oracle follows a kept assignment as the team oracle does (resume with k = 2)."""
    from oracles.web import WebOracle

    web = WebOracle(["ana", "bob", "cy"], tokens=tmp_path / "tokens.sqlite", port=0, k=2, classes=[0, 1],
                    timeout=0, announce=False)
    seen = []
    web.set_assignment_sink(seen.append)
    try:
        web.keep_assignment({"i0": ["bob"]})  # ana answered i0 before the crash
        web.request([Query("i0", round=1), Query("i1", round=1)])
        assert seen[0]["i0"] == ("bob",) and len(seen[0]["i1"]) == 2
        web.request([Query("i0", round=2)])  # kept once only: the next batch is the policy's
        assert len(seen[1]["i0"]) == 2
    finally:
        web.close()
