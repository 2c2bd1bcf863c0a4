"""The annotation board: the open batch, who was given which item, and who answered what.

The web page and the loop share one :class:`Board`. The loop's side (:meth:`Board.open`,
:meth:`Board.wait`, :meth:`Board.close`) publishes a batch and waits for it; the page's side
(:meth:`Board.submit`, :meth:`Board.undo`, :meth:`Board.view`) checks and takes answers. Nothing
here knows about HTTP: a refused answer raises :class:`Refusal` with the status code and the
message the page shows.

Rules an answer must pass, in this order: a batch is open (and it is the batch the person's
page was showing), the item was given to this person in it, they have not answered it yet, the
answer is one of the labels (or skip / unsure), and the loop accepts and commits it
(``on_answer``). Checking and committing happen under one lock, so two answers for the same
item and person can never both be taken.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oracles.answers import AnswerParser, ParsedAnswer, normalize
from oracles.base import Answer, AnswerSink, Query
from oracles.display import Display, QueryDisplay

SKIP, UNSURE = "skip", "unsure"


class Refusal(Exception):
    """An answer or request the board will not take: an HTTP status and a message for people."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds, for a 429


@dataclass(frozen=True)
class Choice:
    """One answer button: the value it posts, what it shows, its keyboard key, the label."""

    value: str
    text: str
    key: str | None
    label: Any


@dataclass
class Batch:
    """One published batch (a round's queries) and what has happened to it."""

    id: str
    round: int
    queries: dict[str, Query]
    displays: dict[str, Display]
    assigned: dict[str, tuple[str, ...]]  # item → annotators
    order: dict[str, list[str]]  # annotator → their items, next first
    need: int  # (item, annotator) answers after which the batch is done
    on_answer: AnswerSink | None
    answered: dict[tuple[str, str], Answer] = field(default_factory=dict)
    undo_stack: dict[str, list[str]] = field(default_factory=dict)
    accepted: list[Answer] = field(default_factory=list)
    closed: bool = False

    @property
    def total(self) -> int:
        return sum(len(a) for a in self.assigned.values())

    def pending(self, annotator: str) -> list[str]:
        return [i for i in self.order.get(annotator, []) if (i, annotator) not in self.answered]


@dataclass(frozen=True)
class View:
    """What one annotator's page shows now."""

    annotator: str
    state: str  # "item", "done" (nothing left for you in this batch), "idle", "finished"
    batch: str | None
    round: int | None
    display: Display | None
    assigned: int  # items given to you in this batch
    answered: int  # of those, answered
    batch_answered: int  # answers in this batch, everyone
    batch_total: int
    run_answered: int  # your answers in this run (undone ones included)
    can_undo: bool


class Board:
    """The shared state of the annotation page.

    Parameters
    ----------
    annotators : sequence of str
        Who may answer.
    parser : AnswerParser
        The label set (or regression) the answers are checked against.
    display : QueryDisplay
        How queries are shown (text, image, feature table, prediction and score).
    """

    def __init__(
        self, annotators: Sequence[str], parser: AnswerParser, display: QueryDisplay
    ) -> None:
        self.annotators = list(annotators)
        self.parser = parser
        self.display = display
        self.batch: Batch | None = None
        self.finished = False
        self.run_answered: dict[str, int] = dict.fromkeys(self.annotators, 0)
        self._changed = threading.Condition(threading.RLock())
        self.choices = self._choices()

    # ----------------------------------------------------------------- labels
    def _choices(self) -> list[Choice]:
        if self.parser.task == "regression":
            return []
        return [
            Choice(str(label), str(label), str(n + 1) if n < 9 else None, label)
            for n, label in enumerate(self.parser.classes)
        ]

    def parse(self, value: Any) -> ParsedAnswer:
        """The meaning of a posted answer; only a label's exact name (case and spaces aside),
        a JSON value equal to a label, ``skip`` or ``unsure``. Positions are not taken: a
        page posts names, so a number that is not a label is a forged answer."""
        if isinstance(value, str):
            key = normalize(value)
            if key == SKIP:
                return ParsedAnswer("skip")
            if key == UNSURE:
                return ParsedAnswer("unsure")
        if self.parser.task == "regression":
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not math.isfinite(number):
                raise Refusal(422, f"{value!r} is not a finite number; send a number, skip or unsure")
            return ParsedAnswer("label", number)
        for choice in self.choices:
            label = choice.label
            same_value = not isinstance(value, str) and type(value) is type(label) and value == label
            if same_value or (isinstance(value, str) and normalize(value) == normalize(choice.value)):
                return ParsedAnswer("label", label)
        valid = ", ".join(repr(c.value) for c in self.choices)
        raise Refusal(422, f"{value!r} is not one of the labels ({valid}), skip or unsure")

    # ----------------------------------------------------------------- loop side
    def open(
        self,
        queries: Sequence[Query],
        assignment: dict[str, tuple[str, ...]],
        on_answer: AnswerSink | None,
        min_share: float = 1.0,
    ) -> Batch:
        """Publish a batch (rendering its items first); the previous one is closed."""
        displays = {q.item_id: self.display(q) for q in queries}
        order: dict[str, list[str]] = {a: [] for a in self.annotators}
        for q in queries:
            for a in assignment[q.item_id]:
                order[a].append(q.item_id)
        total = sum(len(assignment[q.item_id]) for q in queries)
        batch = Batch(
            id=secrets.token_hex(6),
            round=max((q.round for q in queries), default=0),
            queries={q.item_id: q for q in queries},
            displays=displays,
            assigned={q.item_id: tuple(assignment[q.item_id]) for q in queries},
            order=order,
            need=math.ceil(min_share * total - 1e-9),
            on_answer=on_answer,
        )
        with self._changed:
            if self.batch is not None:
                self.batch.closed = True
            self.batch = batch
            self.finished = False
            self._changed.notify_all()
        return batch

    def wait(
        self, batch: Batch, deadline: float | None, stop: threading.Event, poll: float = 0.25
    ) -> bool:
        """Block until ``batch`` has its ``need`` answers (True), or until ``deadline``
        (``time.monotonic``) passes or ``stop`` is set (False)."""
        with self._changed:
            while len(batch.answered) < batch.need:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or stop.is_set():
                    return False
                self._changed.wait(poll if remaining is None else min(poll, remaining))
            return True

    def close(self, batch: Batch, finished: bool = False) -> list[Answer]:
        """Stop taking answers for ``batch``; return the answers it took, in order."""
        with self._changed:
            batch.closed = True
            if self.batch is batch:
                self.batch = None
            self.finished = self.finished or finished
            self._changed.notify_all()
            return list(batch.accepted)

    def finish(self) -> None:
        """The run is over: pages say so instead of waiting for a batch."""
        with self._changed:
            self.finished = True
            if self.batch is not None:
                self.batch.closed = True
                self.batch = None
            self._changed.notify_all()

    # ----------------------------------------------------------------- page side
    def _open_batch(self, batch_id: str | None) -> Batch:
        batch = self.batch
        if batch is None or batch.closed:
            raise Refusal(409, "no batch is open now (the round has moved on); the next "
                               "batch shows up here when the loop asks for it")
        if batch_id is not None and batch_id != batch.id:
            raise Refusal(409, "this page showed an earlier batch, which is closed now; the "
                               "current one is shown")
        return batch

    def submit(
        self, annotator: str, item_id: str, value: Any, batch_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Answer:
        """Check, commit (through the loop's ``on_answer``) and record one answer."""
        with self._changed:
            batch = self._open_batch(batch_id)
            if annotator not in batch.assigned.get(item_id, ()):
                raise Refusal(403, f"item {item_id!r} is not assigned to you ({annotator}) in "
                                   "this batch")
            if (item_id, annotator) in batch.answered:
                raise Refusal(409, f"you have already answered item {item_id!r} in this batch "
                                   "(undo changes your last answer)")
            parsed = self.parse(value)
            answer = Answer(item_id, parsed.label, annotator, parsed.kind,
                            extra={"source": "web", **(extra or {})})
            problem = batch.on_answer(answer) if batch.on_answer is not None else None
            if problem:
                raise Refusal(422, f"the answer was not taken: {problem}")
            batch.answered[(item_id, annotator)] = answer
            batch.undo_stack.setdefault(annotator, []).append(item_id)
            batch.accepted.append(answer)
            self.run_answered[annotator] = self.run_answered.get(annotator, 0) + 1
            self._changed.notify_all()
            return answer

    def undo(self, annotator: str, batch_id: str | None = None) -> str:
        """Ask ``annotator`` again about their last answered item of the open batch.

        The earlier answer stays in the label store, which is append-only; the new answer is
        stored after it and becomes this annotator's vote (every label rule takes a person's
        latest answer to an item). Returns the reopened item's id.
        """
        with self._changed:
            batch = self._open_batch(batch_id)
            stack = batch.undo_stack.get(annotator) or []
            if not stack:
                raise Refusal(409, "nothing to undo: you have not answered anything in this batch")
            item_id = stack.pop()
            del batch.answered[(item_id, annotator)]
            order = batch.order[annotator]
            order.remove(item_id)
            order.insert(0, item_id)
            self._changed.notify_all()
            return item_id

    def view(self, annotator: str) -> View:
        """What ``annotator``'s page shows now."""
        with self._changed:
            batch = self.batch
            if batch is None or batch.closed:
                return View(annotator, "finished" if self.finished else "idle", None, None, None,
                            0, 0, 0, 0, self.run_answered.get(annotator, 0), False)
            pending = batch.pending(annotator)
            mine = batch.order.get(annotator, [])
            return View(
                annotator,
                "item" if pending else "done",
                batch.id,
                batch.round,
                batch.displays[pending[0]] if pending else None,
                len(mine),
                len(mine) - len(pending),
                len(batch.answered),
                batch.total,
                self.run_answered.get(annotator, 0),
                bool(batch.undo_stack.get(annotator)),
            )

    def item_display(self, annotator: str, batch_id: str, item_id: str) -> Display:
        """The display of an item of the open batch given to ``annotator`` (for its image)."""
        with self._changed:
            batch = self._open_batch(batch_id)
            if annotator not in batch.assigned.get(item_id, ()):
                raise Refusal(403, f"item {item_id!r} is not assigned to you ({annotator}) in "
                                   "this batch")
            return batch.displays[item_id]

