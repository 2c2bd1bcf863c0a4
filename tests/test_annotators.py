"""Several annotators: ids, assignment, fan-out, and many annotators writing one store at once."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest

from alloop.aggregation import dawid_skene, majority_vote, vote_counts
from alloop.store import LabelStore
from oracles import SimulatedOracle
from oracles.annotators import LeastLoaded, MultiAnnotatorOracle, RoundRobin, annotator_id
from oracles.base import Answer, OracleBase, Query
from oracles.files import FileExchangeOracle

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- ids and policies


def test_annotator_ids_are_checked():
    assert annotator_id("ann.lee@lab-2") == "ann.lee@lab-2"
    for bad in ("", "two words", "-dash", "x" * 65, "semi;colon"):
        with pytest.raises(ValueError, match="is not valid: use 1-64 letters"):
            annotator_id(bad)


def test_round_robin_deals_in_turn_balanced_and_reproducibly():
    people = ["a", "b", "c"]
    items = [f"i{k}" for k in range(7)]
    one = RoundRobin(seed=5).assign(items, people, k=1, round=2)
    start = people.index(one["i0"][0])
    assert all(one[f"i{j}"] == (people[(start + j) % 3],) for j in range(7))  # in turn
    assert sorted(Counter(a for (a,) in one.values()).values()) == [2, 2, 3]
    assert RoundRobin(seed=5).assign(items, people, k=1, round=2) == one  # same after a resume
    two = RoundRobin(seed=5).assign(items, people, k=2, round=2)
    assert all(len(set(v)) == 2 for v in two.values())
    assert sorted(Counter(a for v in two.values() for a in v).values()) == [4, 5, 5]


def test_least_loaded_fills_up_the_idle_annotators_first():
    policy = LeastLoaded(seed=0, loads={"a": 5, "b": 0, "c": 1})
    first = policy.assign(["x", "y"], ["a", "b", "c"], k=1)
    assert first == {"x": ("b",), "y": ("b",)} or first == {"x": ("b",), "y": ("c",)}
    policy.assign([f"i{k}" for k in range(12)], ["a", "b", "c"], k=2)
    loads = policy.loads
    assert sum(loads.values()) == 6 + 2 + 24 and max(loads.values()) - min(loads.values()) <= 1
    # ties are broken by the seed, reproducibly
    draws = [LeastLoaded(seed=s).assign(["x"], ["a", "b", "c", "d"])["x"] for s in range(20)]
    assert len(set(draws)) > 1
    assert draws == [LeastLoaded(seed=s).assign(["x"], ["a", "b", "c", "d"])["x"] for s in range(20)]


def test_impossible_k_and_unknown_policy_are_named():
    with pytest.raises(ValueError, match=r"k = 3 annotators per item is impossible with 2"):
        MultiAnnotatorOracle({"a": SimulatedOracle({}), "b": SimulatedOracle({})}, k=3)
    with pytest.raises(ValueError, match="unknown policy 'fastest'"):
        MultiAnnotatorOracle({"a": SimulatedOracle({})}, policy="fastest")
    with pytest.raises(ValueError, match="annotator id 'a b' is not valid"):
        MultiAnnotatorOracle({"a b": SimulatedOracle({})})


# ----------------------------------------------------------------------------- fan-out

TRUTH = {f"i{k}": k % 2 for k in range(6)}


def test_each_item_goes_to_its_annotators_and_answers_are_stamped():
    recorded = []

    def record(assignment):  # before anyone is asked
        assert not asked
        recorded.append(assignment)

    asked = []

    class Recording(SimulatedOracle):
        def request(self, queries, on_answer=None):
            asked.extend(queries)
            return super().request(queries, on_answer)

    team = MultiAnnotatorOracle(
        {"ann": Recording(TRUTH), "bob": Recording(TRUTH), "cy": Recording(TRUTH)},
        k=2, seed=1, assignment_sink=record,
    )
    answers = team.request([Query(i, round=4) for i in TRUTH])
    assert recorded == [team.assignment] and len(asked) == 12
    got = Counter((a.item_id, a.annotator) for a in answers)
    assert set(got.values()) == {1} and len(got) == 12
    assert {(i, a) for i, people in team.assignment.items() for a in people} == set(got)
    assert {a.annotator for a in answers} == {"ann", "bob", "cy"}  # not "simulated"


class Shared(OracleBase):
    """An oracle serving several people that names who answered."""

    annotator = "shared"

    def __init__(self, answers):
        self.answers = answers
        self.rejections = []

    def request(self, queries, on_answer=None):
        out = []
        for answer in self.answers:
            problem = on_answer(answer) if on_answer else None
            if problem:
                self.rejections.append(problem)
            else:
                out.append(answer)
        return out


def test_unknown_annotators_and_unassigned_items_are_rejected_with_a_message():
    via = {"via": "desk"}
    shared = Shared([
        Answer("i0", 1, "bob", extra=via),      # another configured person: refused (issue 14)
        Answer("i1", 0, "shared", extra=via),   # the oracle's own id: stamped with its key
        Answer("i2", 1, "mallory", extra=via),  # nobody configured this id
        Answer("zz", 1, "bob", extra=via),      # not an item this oracle was given
    ])
    team = MultiAnnotatorOracle({"desk": shared, "bob": SimulatedOracle(TRUTH)}, k=2)
    committed = []
    answers = team.request([Query(i) for i in ("i0", "i1", "i2")], committed.append)
    assert answers == committed
    # (before issue 14 the first answer was kept as bob's: an impersonation)
    assert [(a.item_id, a.annotator) for a in answers if a.extra == via] == [("i1", "desk")]
    assert shared.rejections == [
        "the answer names annotator 'bob' but came from 'desk''s oracle, which speaks only for "
        "'desk'; 'bob' answers through their own",
        "annotator 'mallory' is not configured (known: desk, bob); use one of those ids",
        "item 'zz' was not given to annotator 'desk' in this batch",
    ]
    assert team.problems == [f"desk: {m}" for m in shared.rejections]


def test_a_rejection_reaches_the_file_oracle_and_is_reported_with_its_line(tmp_path):
    files = {p: FileExchangeOracle(tmp_path / p, classes=[0, 1], timeout=0, poll_interval=0)
             for p in ("ann", "bob")}
    for p, text in (("ann", "item_id,label,annotator\ni0,1,\ni1,0,mallory\n"), ("bob", "item_id,label\ni0,0\n")):
        files[p].answers_path(0).write_text(text)
    team = MultiAnnotatorOracle(files, k=2)
    answers = team.request([Query("i0"), Query("i1")])
    assert sorted((a.item_id, a.annotator, a.label) for a in answers) == [("i0", "ann", 1), ("i0", "bob", 0)]
    assert [str(p) for p in files["ann"].problems] == [
        # since issue 14 the folder refuses a line naming someone else itself
        "round-0-answers.csv:3: this folder's answers are 'files''s; a line naming 'mallory' "
        "is not taken (each annotator answers through their own folder)"
    ]


class Legacy(OracleBase):
    """An oracle of the first protocol: no on_answer (no longer accepted)."""

    def request(self, queries):
        return [Answer(q.item_id, 1, "legacy") for q in queries]


class Broken(OracleBase):
    def request(self, queries, on_answer=None):
        raise RuntimeError("the annotation server is down")


class Interactive(SimulatedOracle):
    interactive = True

    def request(self, queries, on_answer=None):
        Interactive.threads.add(threading.current_thread().name)
        return super().request(queries, on_answer)


def test_old_oracles_errors_and_interactive_oracles():
    # An oracle without on_answer is refused with the fix, not asked through signature sniffing.
    team = MultiAnnotatorOracle({"old": Legacy(), "sim": SimulatedOracle(TRUTH)}, k=2)
    with pytest.raises(TypeError, match=r"Legacy.request\(queries\) does not take on_answer: .*"
                                        r"Subclass oracles.base.OracleBase"):
        team.request([Query("i0"), Query("i1")], [].append)

    with pytest.raises(RuntimeError, match="server is down"):
        MultiAnnotatorOracle({"x": Broken(), "y": SimulatedOracle(TRUTH)}, k=2).request([Query("i0")])

    Interactive.threads = set()
    team = MultiAnnotatorOracle({"t1": Interactive(TRUTH), "t2": Interactive(TRUTH)}, k=2)
    assert not team.parallel
    assert len(team.request([Query("i0")])) == 2
    assert Interactive.threads == {threading.current_thread().name}  # asked one after the other


# ----------------------------------------------------------------------------- concurrency


def sqlite_integrity(store: LabelStore) -> str:
    """SQLite's own check of the file; PostgreSQL has no equivalent to run here."""
    if store.backend != "sqlite":
        return "ok"
    return store._conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_eight_annotators_2000_answers_through_the_store_none_lost_or_duplicated(label_store_url):
    path = label_store_url  # run once on SQLite, once on PostgreSQL
    LabelStore(path).close()  # the schema, once
    items = [f"item{k:03d}" for k in range(250)]
    truth = {i: k % 3 for k, i in enumerate(items)}
    people = {f"ann{j}": SimulatedOracle(truth, noise=0.25, classes=[0, 1, 2], seed=j) for j in range(8)}
    team = MultiAnnotatorOracle(people, k=8)
    assert team.parallel

    local, threads, lock = threading.local(), set(), threading.Lock()

    def commit(answer):  # each annotator's thread writes through its own connection
        if not hasattr(local, "store"):
            local.store = LabelStore(path)  # closed when its thread ends
            with lock:
                threads.add(threading.get_ident())
        local.store.append(answer, round=1)

    returned = team.request([Query(i, round=1) for i in items], commit)
    assert len(threads) == 8

    with LabelStore(path) as store:
        rows = store.answers()
        assert len(rows) == len(returned) == 2000
        assert len({r.seq for r in rows}) == 2000
        assert len({(r.item_id, r.annotator) for r in rows}) == 2000  # none twice
        assert Counter(r.annotator for r in rows) == {a: 250 for a in people}
        assert sqlite_integrity(store) == "ok"
    # Every stored label is the one that annotator gives for that item (asked alone, afterwards).
    expected = {(i, a): o.request([Query(i)])[0].label for a, o in people.items() for i in items}
    assert {(r.item_id, r.annotator): r.label for r in rows} == expected
    # The aggregate of the stored log is that of the answers as given (vote counts are
    # order-free; the majority is a most-voted label, ties going by commit order).
    counts = vote_counts(rows)
    assert counts == vote_counts([(i, a, y) for (i, a), y in expected.items()])
    majority = majority_vote(rows)
    assert all(counts[i][majority[i]] == max(counts[i].values()) for i in items)
    ds = dawid_skene(rows, classes=[0, 1, 2])
    assert sum(ds.labels[i] == truth[i] for i in items) >= 0.95 * len(items)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, threading
    from alloop.store import LabelStore
    from oracles import SimulatedOracle
    from oracles.annotators import MultiAnnotatorOracle
    from oracles.base import Query

    path = sys.argv[1]
    LabelStore(path).close()
    items = [f"item{k}" for k in range(20000)]
    truth = {i: k % 2 for k, i in enumerate(items)}
    team = MultiAnnotatorOracle({f"ann{j}": SimulatedOracle(truth, seed=j) for j in range(8)}, k=1)
    local, lock = threading.local(), threading.Lock()

    def commit(answer):
        if not hasattr(local, "store"):
            local.store = LabelStore(path)
        seq = local.store.append(answer, round=0)
        with lock:  # reported only once committed
            sys.stdout.write(f"{seq} {answer.item_id} {answer.annotator}\\n")
            sys.stdout.flush()

    team.request([Query(i) for i in items], commit)
    """
)


def test_sigkill_while_eight_annotators_write_keeps_every_committed_answer(label_store_url):
    path = label_store_url
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    reported = []
    for line in child.stdout:
        reported.append(tuple(line.split()))
        if len(reported) == 400:
            os.kill(child.pid, signal.SIGKILL)
            break
    reported += [tuple(line.split()) for line in child.stdout]  # what was in the pipe
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    with LabelStore(path) as store:
        assert sqlite_integrity(store) == "ok"
        rows = {(str(r.seq), r.item_id, r.annotator) for r in store.answers()}
    assert set(reported) <= rows and len(reported) >= 400
    assert len(rows) < 20000  # it really died mid-way
    assert len({(item, who) for _, item, who in rows}) == len(rows)
