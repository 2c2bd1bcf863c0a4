"""The files of a file exchange: request files written, answers files read.

Answers files are read leniently and completely on every poll (see :mod:`oracles.files` for
the guarantees): a bad line becomes a :class:`Problem` with its line number, never an error,
and the other lines are kept.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracles.cells import guard_cell, unguard_cell


@dataclass(frozen=True)
class Problem:
    """A line of an answers file that was not taken, and why."""

    path: str
    line: int
    message: str
    text: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class AnswerRow:
    line: int
    item_id: str
    annotator: str | None
    label: Any  # the cell / JSON value, still to be parsed
    extra: dict[str, Any]
    text: str


def column_name(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def csv_row(cells: Sequence[str]) -> str:
    """One CSV record ending in ``\n``, every cell spreadsheet-safe. Written with a ``\r\n``
    terminator, so the csv module also quotes a cell holding a bare ``\r``, then ended in ``\n``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([guard_cell(c) for c in cells])
    return buffer.getvalue()[:-2] + "\n"


def split_tail(path: Path) -> tuple[str, str] | None:
    """The file's text up to its last newline, and what follows it (None if the file is missing)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    end = data.rfind(b"\n")
    text = data[: end + 1].decode("utf-8", errors="replace") if end >= 0 else ""
    tail = data[end + 1:].decode("utf-8", errors="replace")
    if end < 0:
        tail = tail.removeprefix("\ufeff")
    return text.removeprefix("\ufeff"), tail


def _csv_cells(chunk: str, delimiter: str) -> list[str] | None:
    """The cells of one CSV record, or None if ``chunk`` is not exactly one record."""
    try:
        records = list(csv.reader(io.StringIO(chunk), delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    return records[0] if len(records) == 1 else None


def read_csv_answers(text: str, path: str = "answers.csv") -> tuple[list[AnswerRow], list[Problem]]:
    """Rows of a CSV answers file (header with ``item_id`` and ``label``), and its problems.

    The delimiter (comma, semicolon or tab) is read off the header. A quoted cell may span
    lines; a line whose quote is never closed is reported and reading resumes on the next line,
    so one stray quote does not swallow the rest of the file.
    """
    rows: list[AnswerRow] = []
    problems: list[Problem] = []
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if not text.strip():
        return rows, problems
    delimiter = max((",", ";", "\t"), key=lambda d: (lines[0].count(d), d == ","))
    cells = _csv_cells(lines[0], delimiter)
    if cells is None:
        return rows, [Problem(path, 1, "unreadable header line", lines[0])]
    header = [column_name(c) for c in cells]
    missing = [c for c in ("item_id", "label") if c not in header]
    if missing:
        return rows, [Problem(
            path, 1,
            f"the header has no {' and no '.join(missing)} column (it has {header!r}); the "
            "first line must name the columns, with item_id and label among them",
            lines[0],
        )]
    at = {name: i for i, name in reversed(list(enumerate(header)))}
    i = 1
    while i < len(lines):
        j = i
        while lines[i : j + 1] and "\n".join(lines[i : j + 1]).count('"') % 2 and j + 1 < len(lines):
            j += 1  # a quoted cell that goes on over the next line
        source = "\n".join(lines[i : j + 1])
        line = i + 1
        if not source.strip():
            i = j + 1
            continue
        cells = _csv_cells(source, delimiter)
        fits = cells is not None and max(at["item_id"], at["label"]) < len(cells) and not any(
            c.strip() for c in cells[len(header):]
        )
        if not fits and j > i:  # an unclosed quote: report this line alone, go on with the next
            problems.append(Problem(path, line, "a quote that is never closed", lines[i]))
            i += 1
            continue
        i = j + 1
        if cells is None:
            problems.append(Problem(path, line, "malformed CSV line", source))
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            problems.append(Problem(
                path, line, f"{len(cells)} cells but the header names {len(header)} columns "
                "(a stray delimiter or an unquoted comma?)", source,
            ))
            continue
        if len(cells) <= max(at["item_id"], at["label"]):
            problems.append(Problem(
                path, line, f"{len(cells)} cell(s) but the header puts item_id and label in "
                f"columns {at['item_id'] + 1} and {at['label'] + 1} (a missing delimiter?)",
                source,
            ))
            continue
        cells = cells + [""] * (len(header) - len(cells))
        record = {name: unguard_cell(cells[k].strip()) for name, k in at.items()}
        label = record.pop("label")
        item_id = record.pop("item_id")
        annotator = record.pop("annotator", "") or None
        if not label:
            continue  # not answered yet
        if not item_id:
            problems.append(Problem(path, line, "a label without an item_id", source))
            continue
        extra = {k: v for k, v in record.items() if v}
        rows.append(AnswerRow(line, item_id, annotator, label, extra, source))
    return rows, problems


def read_jsonl_answers(text: str, path: str = "answers.jsonl") -> tuple[list[AnswerRow], list[Problem]]:
    """Rows of a JSON-lines answers file (objects with ``item_id`` and ``label``), and problems."""
    rows: list[AnswerRow] = []
    problems: list[Problem] = []
    for number, source in enumerate(text.splitlines(), start=1):
        if not source.strip():
            continue
        try:
            record = json.loads(source)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path, number, f"not valid JSON ({exc.msg})", source))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(path, number, "not a JSON object", source))
            continue
        record = {column_name(k): v for k, v in record.items()}
        label = record.pop("label", None)
        item_id = record.pop("item_id", None)
        annotator = record.pop("annotator", None)
        if label is None or (isinstance(label, str) and not label.strip()):
            continue
        if item_id is None or not str(item_id).strip():
            problems.append(Problem(path, number, "a label without an item_id", source))
            continue
        annotator = None if annotator is None or not str(annotator).strip() else str(annotator).strip()
        rows.append(AnswerRow(number, str(item_id).strip(), annotator, label, record, source))
    return rows, problems
