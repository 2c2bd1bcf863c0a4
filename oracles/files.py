"""People answer through files: a request file goes out, an answers file comes back.

The oracle writes the batch to ``<dir>/round-<r>-requests.csv`` (or ``.jsonl``) and polls
``<dir>/round-<r>-answers.csv`` (``.jsonl``), which any tool may fill: a spreadsheet saving a
copy of the request file with the ``label`` column filled in, a script appending lines, a
labeling tool exporting now and then. Each poll re-reads the answers file from scratch, so it
may be appended to, rewritten or replaced at any time:

- a last line without its newline is read once it has stopped changing (for
  :attr:`FileExchangeOracle.SETTLE_SECONDS`); one still changing when the wait ends is reported;
- every cell of a request file is spreadsheet-safe (:mod:`oracles.cells`: text a spreadsheet
  would run as a formula gets a leading ``'``), and the guard is undone when answers are read,
  so item ids of any text round-trip;
- a line seen before (same item, annotator and answer) is not taken again, so duplicated lines
  and re-exports are harmless; a changed answer is taken as a new answer (the store keeps both);
- columns other than ``item_id``, ``label`` and ``annotator`` are ignored (kept in
  ``Answer.extra``), and their order does not matter;
- a malformed line, an answer outside the label set, an item that is not in the batch or an
  annotator that is not configured is reported once, with its line number, through ``logging``
  and :attr:`FileExchangeOracle.problems`; the other lines are kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

from oracles.answer_files import (
    AnswerRow,
    Problem,
    column_name,
    csv_row,
    read_csv_answers,
    read_jsonl_answers,
    split_tail,
    write_atomic,
)
from oracles.answers import AnswerError, AnswerParser, ParsedAnswer
from oracles.base import Answer, AnswerSink, Query
from oracles.display import QueryDisplay
from oracles.instructions import files_instructions, tell
from oracles.people import PeopleOracle, round_of

__all__ = ["FileExchangeOracle", "Problem", "read_csv_answers", "read_jsonl_answers"]

log = logging.getLogger(__name__)

#: request-file columns the oracle itself writes; display fields that clash get a "raw." prefix.
RESERVED = ("item_id", "annotator", "score", "prediction", "label")


class FileExchangeOracle(PeopleOracle):
    """Exchange queries and answers with people (or their tools) through files.

    Parameters
    ----------
    dir : str or Path
        The exchange folder (created). Images of pixel items are saved in ``<dir>/images``.
    format : {"csv", "jsonl"}
    classes : sequence, optional
        The label set (classification).
    task : {"classification", "regression"}
    annotator : str
        Whose answers the folder holds. A line naming another annotator is reported and not
        taken: answers carry the annotator of where they came from.
    annotators : collection of str, optional
        A folder shared by several people, each naming themselves in an ``annotator`` column or
        key; lines naming any other id, or none (unless ``annotator`` is among them), are
        reported and not taken. The request file gets an ``annotator`` column to fill. Who
        wrote a line of a shared file is whatever it says (file permissions cannot tell): give
        each person their own folder (``MultiAnnotatorOracle`` members) when that matters.
    display : QueryDisplay, optional
        How items are described in the request file.
    poll_interval : float
        Seconds between reads of the answers file.
    min_share : float
        Return once this fraction of the batch has an answer (skip and unsure count).
    timeout : float, optional
        Seconds to wait; then return what has arrived. None waits until ``min_share`` is met.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> oracle = FileExchangeOracle(folder, classes=["ham", "spam"], timeout=0, poll_interval=0)
    >>> _ = (folder / "round-0-answers.csv").write_text("item_id,label\\nm1,spam\\nm2,?\\n")
    >>> [(a.item_id, a.label, a.kind) for a in oracle.request([Query("m1"), Query("m2")])]
    [('m1', 'spam', 'label'), ('m2', None, 'unsure')]
    >>> (folder / "round-0-requests.csv").read_text().splitlines()[0]
    'item_id,score,prediction,label'
    """

    def __init__(
        self,
        dir: str | Path,
        format: Literal["csv", "jsonl"] = "csv",
        *,
        classes: Sequence[Any] | None = None,
        task: str = "classification",
        annotator: str = "files",
        annotators: Collection[str] | None = None,
        display: QueryDisplay | None = None,
        feature_names: Sequence[str] | None = None,
        show_prediction: bool = True,
        show_score: bool = True,
        poll_interval: float = 1.0,
        min_share: float = 1.0,
        timeout: float | None = None,
    ) -> None:
        if format not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl'; got {format!r}")
        super().__init__(min_share=min_share, timeout=timeout, poll_interval=poll_interval,
                         display=display, image_dir=Path(dir) / "images",
                         feature_names=feature_names, show_prediction=show_prediction,
                         show_score=show_score)
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.format = format
        self.parser = AnswerParser(classes, task)
        self.annotator = annotator
        self.annotators = None if annotators is None else {str(a) for a in annotators}
        self.problems: list[Problem] = []
        self._reported: set[tuple[str, str, str]] = set()
        self._tails: dict[Path, tuple[str, float, int]] = {}  # last line, first seen, number

    # ----------------------------------------------------------------- paths
    def requests_path(self, round: int) -> Path:
        return self.dir / f"round-{round}-requests.{self.format}"

    def answers_path(self, round: int) -> Path:
        return self.dir / f"round-{round}-answers.{self.format}"

    # ----------------------------------------------------------------- writing
    def write_requests(self, queries: Sequence[Query]) -> Path:
        """Write the batch to its request file (atomically) and return the path."""
        round_ = round_of(queries)
        records: list[dict[str, Any]] = []
        columns: list[str] = ["item_id"]
        for q in queries:
            shown = self.display(q)
            record: dict[str, Any] = {"item_id": q.item_id}
            for name, value in shown.fields().items():
                key = f"raw.{name}" if column_name(name) in RESERVED else name
                record[key] = value
                if key not in columns:
                    columns.append(key)
            score = None if shown.score is None else float(f"{shown.score:.6g}")
            record.update(score=score, prediction=shown.prediction, label=None)
            if self.annotators is not None:
                record["annotator"] = None
            records.append(record)
        columns += ["score", "prediction"] + (["annotator"] if self.annotators is not None else [])
        columns.append("label")
        path = self.requests_path(round_)
        if self.format == "csv":
            text = csv_row(columns) + "".join(
                csv_row(["" if record.get(c) is None else str(record[c]) for c in columns])
                for record in records
            )
        else:
            text = "".join(
                json.dumps({c: record.get(c) for c in columns}, ensure_ascii=False) + "\n"
                for record in records
            )
        write_atomic(path, text)
        write_atomic(self.dir / "README.txt", self._instructions(round_))
        log.info("wrote %d queries to %s; answers are read from %s",
                 len(queries), path, self.answers_path(round_))
        tell(*files_instructions(round_, len(queries), path, self.answers_path(round_),
                                 self.parser.valid_answers(), jsonl=self.format == "jsonl",
                                 annotators=self.annotators))
        return path

    def _instructions(self, round_: int) -> str:
        who = ("" if self.annotators is None else
               f"Put your annotator id in the annotator column (one of: "
               f"{', '.join(sorted(self.annotators))}).\n")
        how = ("Save a copy of the request file with the label column filled in"
               if self.format == "csv" else
               'Write one JSON object a line: {"item_id": "...", "label": ...}')
        return (
            f"Round {round_}: the items to label are in {self.requests_path(round_).name}.\n"
            f"{how} as {self.answers_path(round_).name}; it is read every "
            f"{self.poll_interval:g} s and may be saved as often as you like.\n"
            f"Valid answers: {self.parser.valid_answers()}.\n{who}"
        )

    # ----------------------------------------------------------------- reading
    def _report(self, problem: Problem) -> None:
        key = (problem.path, problem.message, problem.text)
        if key in self._reported:
            return
        self._reported.add(key)
        self.problems.append(problem)
        log.warning("%s", problem)

    def _parse(self, row: AnswerRow) -> ParsedAnswer:
        if self.format == "jsonl":
            return self.parser.parse_value(row.label)
        return self.parser.parse(row.label)

    #: a last line without its newline is read once it has not changed for this many seconds
    SETTLE_SECONDS = 2.0

    def read(self, round_: int) -> tuple[list[AnswerRow], list[Problem]]:
        """The complete rows of a round's answers file as it is now, and its problems.

        A last line without a newline is read once it has stayed the same for
        :attr:`SETTLE_SECONDS` (a tool that never ends its file with a newline), not before
        (a line still being written).
        """
        path = self.answers_path(round_)
        split = split_tail(path)
        if split is None:
            return [], []
        text, tail = split
        if tail.strip():
            now = time.monotonic()
            seen, since, _ = self._tails.get(path, ("", now, 0))
            if seen != tail:
                self._tails[path] = (tail, now, text.count("\n") + 1)
            elif now - since >= self.SETTLE_SECONDS:
                text += tail + "\n"
                self._tails.pop(path, None)
        else:
            self._tails.pop(path, None)
        reader = read_csv_answers if self.format == "csv" else read_jsonl_answers
        return reader(text, path.name)

    # ----------------------------------------------------------------- asking
    def _ask_people(self, queries: list[Query], on_answer: AnswerSink | None) -> list[Answer]:
        """Write the request file, then take answers as they appear (see the module notes)."""
        round_ = round_of(queries)
        self.write_requests(queries)
        asked = {q.item_id for q in queries}
        need = self.needed(len(queries))
        deadline = self._deadline()
        state = _ExchangeState()
        try:
            while True:
                self._poll(round_, asked, state, on_answer)
                if len(state.answered) >= need or not self._wait_poll(deadline):
                    break
        except KeyboardInterrupt:
            self.quit_requested = True
        tail = self._tails.get(self.answers_path(round_))
        if tail is not None and len(state.answered) < need:
            self._report(Problem(
                self.answers_path(round_).name, tail[2], "the last line has no newline and was still "
                "changing when the wait ended, so it was not read; end the file with a newline",
                tail[0],
            ))
        return state.accepted

    def _poll(
        self, round_: int, asked: set[str], state: _ExchangeState, on_answer: AnswerSink | None
    ) -> None:
        rows, problems = self.read(round_)
        for problem in problems:
            self._report(problem)
        path = self.answers_path(round_).name
        final: dict[tuple[str, str], tuple[tuple[Any, ...], Answer, AnswerRow]] = {}
        for row in rows:
            if row.item_id not in asked:
                self._report(Problem(
                    path, row.line, f"item {row.item_id!r} is not in this batch (already answered "
                    "or never requested); the line is ignored", row.text,
                ))
                continue
            annotator = row.annotator or self.annotator
            if self.annotators is None and annotator != self.annotator:
                self._report(Problem(
                    path, row.line, f"this folder's answers are {self.annotator!r}'s; a line "
                    f"naming {annotator!r} is not taken (each annotator answers through their "
                    "own folder)", row.text,
                ))
                continue
            if self.annotators is not None and annotator not in self.annotators:
                if row.annotator is None:
                    self._report(Problem(
                        path, row.line, "no annotator given; fill in the annotator column (one "
                        f"of: {', '.join(sorted(self.annotators))})", row.text,
                    ))
                    continue
                self._report(Problem(
                    path, row.line, f"annotator {annotator!r} is not configured (known: "
                    f"{', '.join(sorted(self.annotators))}); fix the id or add it to annotators",
                    row.text,
                ))
                continue
            try:
                parsed = self._parse(row)
            except AnswerError as exc:
                self._report(Problem(path, row.line, f"item {row.item_id!r}: {exc}", row.text))
                continue
            key = (row.item_id, annotator, parsed.kind, json.dumps(parsed.label, default=str))
            extra = {**row.extra, "line": row.line, "file": path}
            answer = Answer(row.item_id, parsed.label, annotator, parsed.kind, 1.0, extra)
            final[(row.item_id, annotator)] = (key, answer, row)
            if key not in state.seen:
                self._offer(key, answer, row, path, state, on_answer)
        # A line changed back to an answer taken earlier: the file's last word counts again.
        for pair, (key, answer, row) in final.items():
            if state.latest.get(pair) != key and key in state.taken:
                self._offer(key, answer, row, path, state, on_answer)

    def _offer(
        self,
        key: tuple[Any, ...],
        answer: Answer,
        row: AnswerRow,
        path: str,
        state: _ExchangeState,
        on_answer: AnswerSink | None,
    ) -> None:
        state.seen.add(key)
        problem = on_answer(answer) if on_answer is not None else None
        if problem:
            self._report(Problem(path, row.line, f"item {answer.item_id!r}: {problem}", row.text))
            return
        state.taken.add(key)
        state.latest[(answer.item_id, answer.annotator)] = key
        state.answered.add(answer.item_id)
        state.accepted.append(answer)


class _ExchangeState:
    """What one request has taken so far."""

    def __init__(self) -> None:
        self.seen: set[tuple[Any, ...]] = set()  # offered (taken or rejected)
        self.taken: set[tuple[Any, ...]] = set()
        self.latest: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.answered: set[str] = set()
        self.accepted: list[Answer] = []
