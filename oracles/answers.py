"""Reading a typed answer: a class name or number, a value, or "skip" / "unsure".

People type ``Cat``, `` 2 ``, ``s`` or ``?``; this module turns such text into what it means, or
into a message that tells the person what they may type instead. Nothing here raises on bad
input except :class:`AnswerError`, whose message is meant to be shown as is.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: words that always mean skip / unsure, whatever the label set.
SKIP_WORDS = ("skip",)
UNSURE_WORDS = ("unsure",)
#: shortcuts; a class whose name is one of these wins over the shortcut.
SKIP_SHORTCUTS = ("s",)
UNSURE_SHORTCUTS = ("?",)


class AnswerError(ValueError):
    """A typed answer that means nothing; the message says what is valid."""


@dataclass(frozen=True)
class ParsedAnswer:
    """What a typed answer means: a label, or a skip / unsure without one."""

    kind: Literal["label", "skip", "unsure"]
    label: Any = None


def normalize(text: str) -> str:
    """Case- and space-insensitive form: stripped, casefolded, inner runs of spaces as one."""
    return re.sub(r"\s+", " ", str(text).strip()).casefold()


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class AnswerParser:
    """Parse answers typed against a label set (or numbers, for regression).

    Parameters
    ----------
    classes : sequence, optional
        The label set. Labels are offered in sorted order; a person may type a label's own
        string form (case and spaces ignored; ``"3.0"`` also finds the number ``3``) or its
        position in that order. Positions are accepted only where they cannot be mistaken for
        another label's name: for classes ``[1, 2, 3]`` typing ``1`` means the label ``1``, and
        positions are off.
    task : {"classification", "regression"}
        Regression answers are finite numbers.

    Examples
    --------
    >>> parse = AnswerParser(["dog", "cat"])
    >>> parse("  CAT "), parse("1"), parse("s"), parse("?")  # doctest: +NORMALIZE_WHITESPACE
    (ParsedAnswer(kind='label', label='cat'), ParsedAnswer(kind='label', label='dog'),
     ParsedAnswer(kind='skip', label=None), ParsedAnswer(kind='unsure', label=None))
    >>> parse("bird")
    Traceback (most recent call last):
    ...
    oracles.answers.AnswerError: 'bird' is not a valid answer; type one of: 0 cat, 1 dog, skip (s), unsure (?)
    """

    def __init__(
        self, classes: Sequence[Any] | None = None, task: str = "classification"
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")
        self.task = task
        if task == "regression":
            self.classes: list[Any] = []
        else:
            if classes is None or len(classes) == 0:
                raise ValueError("classification answers need the label set: pass classes=[...]")
            natives = [_native(c) for c in classes]
            try:
                self.classes = sorted(set(natives))
            except TypeError:  # mixed types: keep a stable order by string form
                self.classes = sorted(set(natives), key=str)
        names = [normalize(str(c)) for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(
                f"labels {self.classes!r} cannot be told apart when typed (case and spaces are "
                "ignored); rename them"
            )
        reserved = set(SKIP_WORDS) | set(UNSURE_WORDS)
        clash = [c for c, n in zip(self.classes, names) if n in reserved]
        if clash:
            raise ValueError(
                f"label(s) {clash!r} cannot be typed: 'skip' and 'unsure' are reserved answers; "
                "rename them"
            )
        self._names = dict(zip(names, self.classes))
        # Positions are offered unless some position reads as a different label's name.
        self.positions = all(self._by_name(str(i)) in (None, c) for i, c in enumerate(self.classes))
        self._skip = set(SKIP_WORDS) | {s for s in SKIP_SHORTCUTS if s not in self._names}
        self._unsure = set(UNSURE_WORDS) | {s for s in UNSURE_SHORTCUTS if s not in self._names}

    def _by_name(self, text: str) -> Any:
        key = normalize(text)
        if key in self._names:
            return self._names[key]
        value = _as_float(key)
        if value is not None:
            for c in self.classes:
                if _is_number(c) and float(c) == value:
                    return c
        return None

    def keys(self) -> list[tuple[str, Any]]:
        """(what to type, label) for every label, in order."""
        if self.positions:
            return [(str(i), c) for i, c in enumerate(self.classes)]
        return [(str(c), c) for c in self.classes]

    def valid_answers(self) -> str:
        """The list of valid answers, as shown in messages."""
        skip = "skip (s)" if "s" in self._skip else "skip"
        unsure = "unsure (?)" if "?" in self._unsure else "unsure"
        if self.task == "regression":
            return f"a number, {skip}, {unsure}"
        shown = [key if key == str(c) else f"{key} {c}" for key, c in self.keys()]
        return ", ".join([*shown, skip, unsure])

    def parse(self, text: Any) -> ParsedAnswer:
        """The meaning of ``text``; :class:`AnswerError` with a helpful message if it has none."""
        if text is None or (isinstance(text, float) and math.isnan(text)):
            text = ""
        raw = str(_native(text))
        key = normalize(raw)
        if not key:
            raise AnswerError(f"empty answer; type one of: {self.valid_answers()}")
        if key in self._skip:
            return ParsedAnswer("skip")
        if key in self._unsure:
            return ParsedAnswer("unsure")
        if self.task == "regression":
            value = _as_float(key)
            if value is None:
                raise AnswerError(
                    f"{raw.strip()!r} is not a finite number; type {self.valid_answers()}"
                )
            return ParsedAnswer("label", value)
        label = self._by_name(key)
        if label is not None:
            return ParsedAnswer("label", label)
        if self.positions and re.fullmatch(r"\d+", key):
            i = int(key)
            if i < len(self.classes):
                return ParsedAnswer("label", self.classes[i])
        raise AnswerError(f"{raw.strip()!r} is not a valid answer; type one of: {self.valid_answers()}")

    def parse_value(self, value: Any) -> ParsedAnswer:
        """Like :meth:`parse`, but a value that already is a label (e.g. from JSON) is taken as is."""
        value = _native(value)
        if self.task == "classification" and not isinstance(value, str):
            for c in self.classes:
                if type(c) is type(value) and c == value:
                    return ParsedAnswer("label", c)
        return self.parse("" if value is None else value)

    __call__ = parse


def parse_answer(
    text: Any, classes: Sequence[Any] | None = None, task: str = "classification"
) -> ParsedAnswer:
    """Parse one typed answer; see :class:`AnswerParser` for the rules.

    Examples
    --------
    >>> parse_answer("2", classes=range(10))
    ParsedAnswer(kind='label', label=2)
    >>> parse_answer(" 3.5 ", task="regression")
    ParsedAnswer(kind='label', label=3.5)
    """
    return AnswerParser(classes, task).parse(text)
