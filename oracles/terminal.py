"""A person answers at a terminal prompt: one item at a time, with undo, skip and quit.

Every answer is handed to ``on_answer`` the moment it is typed, so quitting, Ctrl-C, a closed
terminal or a killed process loses nothing that was answered. Undo re-asks the previous item and
the new answer is handed over as another answer (the store is append-only: the newest answer of
an annotator for an item is the one that counts, the earlier one stays in the history).
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from codecs import getincrementaldecoder
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from oracles.answers import AnswerError, AnswerParser, normalize
from oracles.base import Answer, AnswerSink, Query
from oracles.display import Display, QueryDisplay
from oracles.people import PeopleOracle

#: ``prompt(message, timeout)`` returns one typed line (without its newline). It raises
#: ``EOFError`` at end of input, ``TimeoutError`` when ``timeout`` seconds pass without a line,
#: and lets ``KeyboardInterrupt`` through.
PromptFn = Callable[[str, float | None], str]

QUIT = ("q", "quit")
UNDO = ("u", "undo")
HELP = ("h", "help")


class StdinPrompt:
    """Read lines from standard input, with a timeout and a way to cancel the wait.

    Reads the file descriptor directly (``select`` + ``os.read``) so lines sent together, for
    example through a pipe, are each seen, and so a wait can end after ``timeout`` seconds. Where
    standard input has no file descriptor (or no ``select``, as on Windows) it falls back to
    :func:`input` and cannot time out.

    Parameters
    ----------
    stdin, stdout : file objects, optional
        Default ``sys.stdin`` and ``sys.stdout``.
    stop : threading.Event, optional
        Setting it ends a wait as a timeout does.
    """

    def __init__(
        self,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stop = stop
        self._buffer = ""
        self._decoder = getincrementaldecoder("utf-8")(errors="replace")
        self._eof = False

    def _fd(self) -> int | None:
        stream = self.stdin or sys.stdin
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        return fd if os.name == "posix" else None

    def _take_line(self) -> str | None:
        if "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            return line.rstrip("\r")
        if self._eof and self._buffer:
            line, self._buffer = self._buffer, ""
            return line.rstrip("\r")
        return None

    def __call__(self, message: str, timeout: float | None = None) -> str:
        out = self.stdout or sys.stdout
        fd = self._fd()
        if fd is None:
            return input(message)
        out.write(message)
        out.flush()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                raise EOFError("end of input")
            if self.stop is not None and self.stop.is_set():
                raise TimeoutError("the wait was cancelled")
            wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                data = os.read(fd, 4096)
                if data:
                    self._buffer += self._decoder.decode(data)
                else:
                    self._buffer += self._decoder.decode(b"", final=True)
                    self._eof = True


class TerminalOracle(PeopleOracle):
    """Ask a person at the terminal, item by item.

    Keys: a label (its name or number), ``s`` skip, ``?`` unsure, ``u`` undo (re-ask the previous
    item; the new answer is added, the old one stays in the history), ``q`` quit (return what was
    answered; the rest stays open), ``h`` help. Ctrl-C and end of input act as ``q``. An empty
    answer accepts the proposed label when the query carries one. A class named like a key wins
    over the one-letter key; the long words (``skip``, ``undo``, ...) always work.

    Parameters
    ----------
    classes : sequence, optional
        The label set (classification).
    task : {"classification", "regression"}
    annotator : str
        Stamped on every answer.
    display : QueryDisplay, optional
        How items are rendered; by default built from ``image_dir``, ``feature_names``,
        ``show_prediction`` and ``show_score``.
    min_share : float
        Return once this fraction of the batch is answered (skip and unsure count).
    timeout : float, optional
        Seconds for the whole batch; when they pass, return what was answered.
    prompt : callable, optional
        ``prompt(message, timeout) -> line`` (see :data:`PromptFn`); default: standard input.
    console : rich.console.Console, optional
        Where items are shown (default: standard output).

    Attributes
    ----------
    quit_requested : bool
        True when the person quit (``q``, Ctrl-C, end of input) during the last request; a loop
        should stop asking after storing what it has.
    timed_out : bool
        True when the last request ended because its timeout passed (or :meth:`cancel`).
    """

    interactive = True

    def __init__(
        self,
        classes: Sequence[Any] | None = None,
        task: str = "classification",
        *,
        annotator: str = "terminal",
        display: QueryDisplay | None = None,
        image_dir: str | Path | None = None,
        feature_names: Sequence[str] | None = None,
        show_prediction: bool = True,
        show_score: bool = True,
        min_share: float = 1.0,
        timeout: float | None = None,
        prompt: PromptFn | None = None,
        console: Console | None = None,
    ) -> None:
        super().__init__(min_share=min_share, timeout=timeout, display=display,
                         image_dir=image_dir, feature_names=feature_names,
                         show_prediction=show_prediction, show_score=show_score)
        self.parser = AnswerParser(classes, task)
        self.annotator = annotator
        self.prompt = prompt or StdinPrompt(stop=self._stop)
        self.console = console or Console(highlight=False)
        names = set(self.parser._names)
        taken = sorted(names & {"quit", "undo", "help"})
        if taken:
            raise ValueError(
                f"label(s) {taken!r} cannot be typed at the terminal: quit, undo and help are "
                "commands there; rename them"
            )
        self._quit = {w for w in QUIT if w == "quit" or w not in names}
        self._undo = {w for w in UNDO if w == "undo" or w not in names}
        self._help = {w for w in HELP if w == "help" or w not in names}

    # ----------------------------------------------------------------- showing
    def keys_line(self) -> str:
        """The one-line key legend shown under each item."""
        short = lambda words, long: next((w for w in words if w != long), long)  # noqa: E731
        tail = (f"{short(self._undo, 'undo')} undo · {short(self._quit, 'quit')} quit · "
                f"{short(self._help, 'help')} help")
        return f"answers: {self.parser.valid_answers()}  ·  {tail}"

    def _show(self, shown: Display, position: int, n: int, answered: int, note: str = "") -> None:
        parts: list[Any] = []
        if note:
            parts.append(Text(note, style="yellow"))
        if shown.kind == "text":
            parts.append(Text(shown.text or ""))
        elif shown.kind == "image":
            if shown.preview:
                parts.append(Text(shown.preview))
            if shown.image_path:
                parts.append(Text(f"image: {shown.image_path}", style="dim"))
        elif shown.kind == "table":
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            table.add_column("feature")
            table.add_column("value", justify="right")
            for name, value in shown.table:
                table.add_row(name, value)
            parts.append(table)
        else:
            parts.append(Text("(nothing to show for this item)", style="dim"))
        words = {"prediction": "model predicts: {}", "score": "query score: {}",
                 "proposed": "proposed: {} (Enter accepts)"}
        facts = [words[name].format(text) for name, text in shown.facts()]
        if facts:
            parts.append(Text("   ".join(facts), style="cyan"))
        parts.append(Text(self.keys_line(), style="dim"))
        title = f"item {shown.item_id} · {position}/{n} · answered {answered}/{n}"
        self.console.print(Panel(Group(*parts), title=title, title_align="left"))

    # ----------------------------------------------------------------- asking
    def _ask_people(self, queries: list[Query], on_answer: AnswerSink | None) -> list[Answer]:
        """Ask for each query in turn; return the accepted answers (see the class notes)."""
        n = len(queries)
        need = self.needed(n)
        deadline = self._deadline()
        accepted: list[Answer] = []
        latest: dict[str, Answer] = {}
        done: list[int] = []  # positions in the order they were answered (the undo stack)
        try:
            self._loop(queries, need, deadline, on_answer, accepted, latest, done)
        except KeyboardInterrupt:  # between prompts (say, while an answer was being stored)
            self.quit_requested = True
        counts = {k: sum(a.kind == k for a in latest.values()) for k in ("label", "skip", "unsure")}
        self.console.print(Text(
            f"answered {len(latest)} of {n}: {counts['label']} labeled, {counts['skip']} skipped, "
            f"{counts['unsure']} unsure" + (" (quit)" if self.quit_requested else "")
            + (" (time is up)" if self.timed_out else ""),
            style="bold",
        ))
        return accepted

    def _loop(
        self,
        queries: list[Query],
        need: int,
        deadline: float | None,
        on_answer: AnswerSink | None,
        accepted: list[Answer],
        latest: dict[str, Answer],
        done: list[int],
    ) -> None:
        n = len(queries)
        redo: int | None = None
        while len(latest) < need or redo is not None:
            if redo is not None:
                position, redo = redo, None
                before = latest[queries[position].item_id]
                was = before.label if before.kind == "label" else before.kind
                note = f"undo: item answered {was!r} before; answer it again"
            else:
                open_ = [i for i, q in enumerate(queries) if q.item_id not in latest]
                if not open_:
                    break
                position, note = open_[0], ""
            query = queries[position]
            shown = self.display(query)
            self._show(shown, position + 1, n, len(latest), note)
            started = time.monotonic()
            outcome = self._ask(query, position + 1, n, deadline, on_answer, bool(note), started)
            if outcome == "quit":
                self.quit_requested = True
                break
            if outcome == "timeout":
                self.timed_out = True
                break
            if outcome == "undo":
                if done:
                    redo = done.pop()
                else:
                    self.console.print(Text("nothing to undo in this batch", style="yellow"))
                    redo = position if query.item_id in latest else None
                continue
            assert isinstance(outcome, Answer)
            accepted.append(outcome)
            latest[query.item_id] = outcome
            done.append(position)

    def _ask(
        self,
        query: Query,
        position: int,
        n: int,
        deadline: float | None,
        on_answer: AnswerSink | None,
        is_redo: bool,
        started: float,
    ) -> Answer | str:
        """Prompt until a valid answer is accepted; or ``"quit"``, ``"undo"``, ``"timeout"``."""
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or self._stop.is_set():
                return "timeout"
            try:
                line = self.prompt(f"{position}/{n} > ", remaining)
            except TimeoutError:
                return "timeout"
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return "quit"
            key = normalize(line)
            if key in self._quit:
                return "quit"
            if key in self._undo:
                return "undo"
            if key in self._help:
                self.console.print(Text(self.keys_line()))
                continue
            try:
                if not key and query.proposed_label is not None:
                    parsed = self.parser.parse_value(query.proposed_label)
                else:
                    parsed = self.parser.parse(line)
            except AnswerError as exc:
                self.console.print(Text(str(exc), style="red"))
                continue
            extra: dict[str, Any] = {"seconds": round(time.monotonic() - started, 3)}
            if is_redo:
                extra["redo"] = True
            answer = Answer(query.item_id, parsed.label, self.annotator, parsed.kind, 1.0, extra)
            if on_answer is not None:
                problem = on_answer(answer)
                if problem:
                    self.console.print(Text(f"not stored: {problem}", style="red"))
                    continue
            return answer
