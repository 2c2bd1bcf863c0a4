"""The commit stage: check each answer and store it the moment it is given.

An answer is refused (with a reason) when its item was not asked this round, its label is not
one of the declared classes, or a regression label is not a finite number. Valid answers are
stored even when others are refused; the loop raises :class:`InvalidAnswerError` afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from oracles.base import Answer


def _finite_number(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def check_answers(answers: Sequence[Answer], asked: set[str], classes: np.ndarray | None,
                  task: str) -> tuple[list[Answer], list[str]]:
    """(valid answers, a reason for each refused one)."""
    good, bad = [], []
    known = None if classes is None else set(classes.tolist())
    for a in answers:
        if a.item_id not in asked:
            bad.append(f"item {a.item_id!r} was not asked this round")
        elif a.kind == "label" and known is not None and a.label not in known:
            bad.append(f"item {a.item_id!r}: label {a.label!r} is not one of {classes.tolist()!r}")
        elif a.kind == "label" and task == "regression" and not _finite_number(a.label):
            bad.append(f"item {a.item_id!r}: label {a.label!r} is not a finite number")
        else:
            good.append(a)
    return good, bad


class Committer:
    """Stores one round's answers: :meth:`commit` as each comes, :meth:`commit_rest` after."""

    def __init__(self, store: Any, round_: int, asked: set[str], classes: np.ndarray | None,
                 task: str) -> None:
        self.store, self.round, self.asked = store, round_, asked
        self.classes, self.task = classes, task
        self.committed: set[tuple[str, str, str]] = set()
        #: reasons for every refused answer so far
        self.refused: list[str] = []

    @staticmethod
    def _key(a: Answer) -> tuple[str, str, str]:
        return (a.item_id, a.annotator, repr(a.label))

    def commit(self, answer: Answer) -> str | None:
        """Validate and store one answer; the reason if it is refused (the oracle's callback)."""
        _, bad = check_answers([answer], self.asked, self.classes, self.task)
        if bad:
            return bad[0]
        self.store.append(answer, self.round)
        self.committed.add(self._key(answer))
        return None

    def commit_rest(self, answers: Iterable[Answer]) -> None:
        """Store the answers not committed one by one yet (an oracle that returns them all)."""
        late = [a for a in answers if self._key(a) not in self.committed]
        good, bad = check_answers(late, self.asked, self.classes, self.task)
        for answer in good:
            self.store.append(answer, self.round)
            self.committed.add(self._key(answer))
        self.refused += bad
