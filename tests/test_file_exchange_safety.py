"""File exchange: ids of any text round-trip, the OWASP CSV-injection guard on every cell
(undone on read), and a last line without a newline read once it stops changing, or reported."""

import csv
import io
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from oracles import Query
from oracles.cells import TRIGGERS, guard_cell, unguard_cell
from oracles.files import FileExchangeOracle

CLASSES = ["cat", "dog"]


@given(st.text())
def test_the_guard_is_undone_exactly_for_any_text(value):
    assert unguard_cell(guard_cell(value)) == value


@given(st.text(min_size=1))
def test_no_guarded_cell_starts_a_formula(value):
    import re

    written = guard_cell(value)  # only a plain negative number may start with a trigger
    assert written[0] not in TRIGGERS or re.fullmatch(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", written)


def test_every_trigger_character_is_guarded():
    assert [guard_cell(c + "x") for c in TRIGGERS] == ["'" + c + "x" for c in TRIGGERS]
    assert guard_cell("-0.25") == "-0.25"  # a negative number stays a number
    assert guard_cell("+3") == "'+3"  # a spreadsheet would drop the + of an id "+3"


IDS = ["=1", "+2", "-3x", "@me", "\tt", "\rr", "'=q", "a,b", 'say "hi"', "línea\nnueva",
       "bare\rcr", "'plain", "ok"]


@settings(deadline=None, max_examples=40)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        min_size=1).filter(lambda s: s.strip() == s and s.strip()),
                min_size=1, max_size=5, unique=True))
def test_any_item_ids_round_trip_through_the_copied_request_file(tmp_path_factory, ids):
    answered_back(tmp_path_factory.mktemp("x"), ids)


def answered_back(folder, ids):
    """The documented workflow: copy the request file, fill the label column, save as answers."""
    oracle = FileExchangeOracle(folder, classes=CLASSES, timeout=0, poll_interval=0)
    queries = [Query(i, raw=i, round=0) for i in ids]
    path = oracle.write_requests(queries)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    for row in rows[1:]:
        row[-1] = "dog"
    out = io.StringIO()
    csv.writer(out).writerows(rows)  # CRLF, cells with \r or \n quoted, as spreadsheets save
    oracle.answers_path(0).write_bytes(out.getvalue().encode())
    answers = oracle.request(queries)
    assert sorted(a.item_id for a in answers) == sorted(ids), oracle.problems
    assert oracle.problems == []
    return text


def test_formula_like_and_odd_ids_round_trip_and_no_cell_is_a_formula(tmp_path):
    text = answered_back(tmp_path, IDS)
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            assert cell[:1] not in TRIGGERS or cell.startswith("-0."), row  # scores may be < 0
    assert "\r" not in text.replace('"bare\rcr"', "").replace("'\rr", "")  # any \r is quoted


def test_a_bare_carriage_return_is_quoted(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES)
    with open(oracle.write_requests([Query("x", raw="a\rb")]), encoding="utf-8", newline="") as f:
        text = f.read()
    assert '"a\rb"' in text


def test_a_final_line_without_newline_is_read_once_it_stops_changing(tmp_path, monkeypatch):
    monkeypatch.setattr(FileExchangeOracle, "SETTLE_SECONDS", 0.3)
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=20, poll_interval=0.05)
    oracle.answers_path(0).write_text("item_id,label\na0,cat\na1,dog")  # a tool without final \n
    answers = oracle.request([Query("a0"), Query("a1")])
    assert [(a.item_id, a.label) for a in answers] == [("a0", "cat"), ("a1", "dog")]
    assert not oracle.timed_out and oracle.problems == []


def test_a_final_line_still_changing_when_the_wait_ends_is_reported(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=0.3, poll_interval=0.05)
    oracle.answers_path(0).write_text("item_id,label\na0,cat\na1,do")
    start = time.monotonic()
    answers = oracle.request([Query("a0"), Query("a1")])
    assert time.monotonic() - start < oracle.SETTLE_SECONDS + 5
    assert [a.item_id for a in answers] == ["a0"]
    assert [str(p) for p in oracle.problems] == [
        "round-0-answers.csv:3: the last line has no newline and was still changing when the "
        "wait ended, so it was not read; end the file with a newline"
    ]


def test_labels_export_csv_guards_formula_cells(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from alloop.store import open_store
    from oracles import Answer

    root = Path(__file__).resolve().parents[1]
    with open_store(tmp_path / "s.sqlite") as store:
        store.append(Answer("=HYPERLINK(\"http://x\")", "-cmd", annotator="ann"), round=0)
        store.append(Answer("ok", 1, annotator="ann"), round=0)
    out = tmp_path / "labels.csv"
    done = subprocess.run([sys.executable, "-m", "alloop", "labels", "export",
                           str(tmp_path / "s.sqlite"), "--out", str(out)],
                          capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["item_id"] == "'=HYPERLINK(\"http://x\")" and rows[0]["label"] == "'-cmd"
    assert [unguard_cell(r["item_id"]) for r in rows] == ["=HYPERLINK(\"http://x\")", "ok"]
    assert rows[1]["label"] == "1"
