"""The file-exchange oracle: request files out, answers files (written by anyone, in pieces) in."""

import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from alloop.store import LabelStore
from oracles.base import Query
from oracles.files import FileExchangeOracle, _ExchangeState, read_csv_answers

CLASSES = ["cat", "dog"]


def queries(n=4, round=1):
    return [Query(f"a{i}", raw=f"photo caption {i}", score=0.1 * i, prediction="cat", round=round)
            for i in range(n)]


def store_sink(store, round):
    def commit(answer):
        store.append(answer, round)

    return commit


# A separate process fills the answers file in pieces: a line cut mid-way, a duplicate, a
# malformed line, an item that was not asked, a label outside the set, then a full rewrite with
# other columns in another order.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    folder, ext = sys.argv[1], sys.argv[2]
    requests = os.path.join(folder, f"round-1-requests.{ext}")
    answers = os.path.join(folder, f"round-1-answers.{ext}")
    while not os.path.exists(requests):
        time.sleep(0.01)
    pieces = {
        "csv": [
            "item_id,label\\na0,cat\\na1,do",
            "g\\na0,cat\\nthis line has no delimiter\\nzz,cat\\na2,horse\\n",
        ],
        "jsonl": [
            '{"item_id": "a0", "label": "cat"}\\n{"item_id": "a1", "lab',
            'el": "dog"}\\n{"item_id": "a0", "label": "cat"}\\n{not json\\n'
            '{"item_id": "zz", "label": "cat"}\\n{"item_id": "a2", "label": "horse"}\\n',
        ],
    }[ext]
    rewrite = {
        "csv": "note,label,item_id,annotator\\n,cat,a0,\\nlooks odd,dog,a2,\\n,?,a3,\\n,dog,a1,\\n",
        "jsonl": '{"label": "cat", "item_id": "a0"}\\n{"note": "looks odd", "label": 1, '
                 '"item_id": "a2"}\\n{"item_id": "a3", "label": "?"}\\n'
                 '{"item_id": "a1", "label": "dog"}\\n',
    }[ext]
    with open(answers, "w") as f:
        for piece in pieces:
            f.write(piece)
            f.flush()
            time.sleep(0.6)
    tmp = answers + ".tmp"
    with open(tmp, "w") as f:
        f.write(rewrite)
    os.replace(tmp, answers)  # as an editor or a spreadsheet saves
    """
)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_answers_written_in_pieces_by_another_process(tmp_path, fmt):
    folder = tmp_path / "exchange"
    store = LabelStore(tmp_path / "labels.sqlite")
    oracle = FileExchangeOracle(folder, fmt, classes=CLASSES, poll_interval=0.05, timeout=120)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), fmt])
    try:
        answers = oracle.request(queries(), store_sink(store, 1))
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and not oracle.timed_out
    got = sorted((a.item_id, a.label, a.kind) for a in answers)
    assert got == [("a0", "cat", "label"), ("a1", "dog", "label"), ("a2", "dog", "label"),
                   ("a3", None, "unsure")]
    # Stored once each: the duplicate line and the re-read rewrite added nothing.
    stored = sorted((a.item_id, a.label, a.kind) for a in store.answers())
    assert stored == got
    assert {a.annotator for a in store.answers()} == {"files"}
    # Each problem reported once, with its line number, although the file was read many times.
    messages = [str(p) for p in oracle.problems]
    name = f"round-1-answers.{fmt}"
    bad_line = {"csv": "1 cell(s)", "jsonl": "not valid JSON"}[fmt]
    assert sum(bad_line in m for m in messages) == 1
    line = {"csv": 5, "jsonl": 4}[fmt]
    assert any(m.startswith(f"{name}:{line}: ") and bad_line in m for m in messages), messages
    assert sum("item 'zz' is not in this batch" in m for m in messages) == 1
    assert sum("'horse' is not a valid answer" in m for m in messages) == 1
    assert not any("'do'" in m or "'dog'}" in m for m in messages)  # the cut line was never read
    assert len(messages) == 3, messages
    note = [a for a in answers if a.item_id == "a2"][0].extra
    assert note["note"] == "looks odd" and note["file"] == name  # extra columns are kept aside


def test_a_line_without_its_newline_is_not_read_yet(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES)
    path = oracle.answers_path(0)
    path.write_text("item_id,label\na0,cat\na1,do")
    rows, problems = oracle.read(0)
    assert [(r.item_id, r.label) for r in rows] == [("a0", "cat")] and problems == []
    path.write_text("item_id,label\na0,cat\na1,dog\n")
    assert [(r.item_id, r.label) for r in oracle.read(0)[0]] == [("a0", "cat"), ("a1", "dog")]
    path.write_text("item_id,lab")  # not even the header is complete
    assert oracle.read(0) == ([], [])


def test_request_file_is_complete_and_spreadsheet_safe(tmp_path):
    pixels = np.arange(64.0).reshape(8, 8)
    batch = [
        Query("t1", raw="=HYPERLINK(\"http://x\")", score=0.123456789, prediction="dog", round=2),
        Query("p1", raw=pixels, score=0.5, prediction="cat", round=2),
        Query("r1", raw={"label": "clash", "age": 30}, round=2),
    ]
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=0, poll_interval=0)
    path = oracle.write_requests(batch)
    assert path == tmp_path / "round-2-requests.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.txt", "images", "round-2-requests.csv"]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["item_id", "text", "image", "raw.label", "age", "score", "prediction", "label"]
    assert rows[0]["text"] == "'=HYPERLINK(\"http://x\")"  # not run as a formula
    assert rows[0]["score"] == "0.123457" and rows[0]["label"] == ""
    assert (tmp_path / "images" / "round-2-item-p1.png").exists() and rows[1]["image"].endswith("p1.png")
    assert rows[2]["raw.label"] == "clash" and rows[2]["age"] == "30"
    readme = (tmp_path / "README.txt").read_text()
    assert "round-2-answers.csv" in readme and "0 cat, 1 dog, skip (s), unsure (?)" in readme

    jsonl = FileExchangeOracle(tmp_path / "j", "jsonl", classes=CLASSES)
    lines = jsonl.write_requests(batch[:1]).read_text().splitlines()
    assert json.loads(lines[0]) == {"item_id": "t1", "text": "=HYPERLINK(\"http://x\")",
                                    "score": 0.123457, "prediction": "dog", "label": None}


def test_the_filled_in_request_file_from_a_spreadsheet_is_an_answers_file(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=0, poll_interval=0)
    path = oracle.write_requests(queries(3))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[1][-1], rows[3][-1] = "Dog", "1"  # a0 and a2 filled in, a1 left empty
    # Saved the way a European spreadsheet does: semicolons, CRLF, a byte-order mark.
    text = "\r\n".join(";".join(row) for row in rows) + "\r\n"
    oracle.answers_path(1).write_bytes("\ufeff".encode() + text.encode())
    answers = oracle.request(queries(3))
    assert [(a.item_id, a.label) for a in answers] == [("a0", "dog"), ("a2", "dog")]
    assert oracle.problems == [] and oracle.timed_out


def test_min_share_and_timeout_are_honoured(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, min_share=0.5, timeout=120, poll_interval=0.05)
    oracle.answers_path(1).write_text("item_id,label\na3,cat\na1,s\n")
    started = time.monotonic()
    answers = oracle.request(queries(4))
    assert {a.item_id for a in answers} == {"a1", "a3"} and not oracle.timed_out
    assert time.monotonic() - started < 60  # min_share met: no waiting for the timeout

    silent = FileExchangeOracle(tmp_path / "silent", classes=CLASSES, timeout=0.3, poll_interval=0.05)
    started = time.monotonic()
    assert silent.request(queries(4)) == [] and silent.timed_out
    assert time.monotonic() - started < 60


def test_cancel_ends_the_wait_from_another_thread(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, poll_interval=0.05)  # no timeout
    timer = threading.Timer(0.3, oracle.cancel)
    timer.start()
    assert oracle.request(queries(2)) == [] and oracle.timed_out
    timer.join()


def test_a_changed_answer_is_a_new_answer_and_changing_back_counts_again(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=0, poll_interval=0)
    path = oracle.answers_path(1)
    state, taken = _ExchangeState(), []  # the polls of one request share this
    asked = {"a0"}
    for content in ["cat", "dog", "dog", "cat", "cat"]:
        path.write_text(f"item_id,label\na0,{content}\n")
        oracle._poll(1, asked, state, lambda a: taken.append(a.label))
    assert taken == ["cat", "dog", "cat"]
    # A file holding both lines at once: each distinct answer once, the last one is current.
    path.write_text("item_id,label\na0,dog\na0,cat\n")
    oracle._poll(1, asked, state, lambda a: taken.append(a.label))
    assert taken == ["cat", "dog", "cat"]


def test_annotators_must_be_configured(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    oracle = FileExchangeOracle(tmp_path / "x", classes=CLASSES, annotators=["ann", "bob"],
                                timeout=0, poll_interval=0)
    oracle.answers_path(1).write_text(
        "item_id,label,annotator\na0,cat,ann\na0,dog,bob\na1,cat,mallory\na2,dog,\n"
    )
    answers = oracle.request(queries(3), store_sink(store, 1))
    assert [(a.item_id, a.annotator) for a in answers] == [("a0", "ann"), ("a0", "bob")]
    assert [str(p) for p in oracle.problems] == [
        "round-1-answers.csv:4: annotator 'mallory' is not configured (known: ann, bob); fix the "
        "id or add it to annotators",
        "round-1-answers.csv:5: no annotator given; fill in the annotator column (one of: ann, bob)",
    ]
    assert "mallory" not in {a.annotator for a in store.answers()}
    header = oracle.requests_path(1).read_text().splitlines()[0]
    assert header.endswith(",annotator,label")


def test_rejected_answers_are_reported_once_with_their_line(tmp_path):
    oracle = FileExchangeOracle(tmp_path, classes=CLASSES, timeout=0.4, poll_interval=0.05)
    oracle.answers_path(1).write_text("item_id,label\na0,cat\na1,dog\n")
    calls = []

    def sink(answer):
        calls.append(answer.item_id)
        return "the store is read-only" if answer.item_id == "a1" else None

    answers = oracle.request(queries(2), sink)
    assert [a.item_id for a in answers] == ["a0"]
    assert calls == ["a0", "a1"]  # not offered again on later polls
    assert [str(p) for p in oracle.problems] == ["round-1-answers.csv:3: item 'a1': the store is read-only"]


def test_csv_reader_survives_an_unclosed_quote_and_stray_cells():
    text = 'item_id,label,comment\na0,cat,"two\nlines"\na1,"dog\na2,dog,\na3,cat,x,y\n'
    rows, problems = read_csv_answers(text)
    assert [(r.line, r.item_id, r.label, r.extra) for r in rows] == [
        (2, "a0", "cat", {"comment": "two\nlines"}), (5, "a2", "dog", {})
    ]
    assert [str(p) for p in problems] == [
        "answers.csv:4: a quote that is never closed",
        "answers.csv:6: 4 cells but the header names 3 columns (a stray delimiter or an "
        "unquoted comma?)",
    ]
    _, problems = read_csv_answers("id,answer\nx,1\n")
    assert "the header has no item_id and no label column" in str(problems[0])


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="format must be 'csv' or 'jsonl'; got 'xlsx'"):
        FileExchangeOracle(tmp_path, "xlsx", classes=CLASSES)
    with pytest.raises(ValueError, match="min_share must be in"):
        FileExchangeOracle(tmp_path, classes=CLASSES, min_share=2)
    with pytest.raises(ValueError, match="one round's queries"):
        FileExchangeOracle(tmp_path, classes=CLASSES).request([Query("a", round=1), Query("b", round=2)])
    assert not list(tmp_path.glob(".*.tmp"))
    assert os.listdir(tmp_path) == []
