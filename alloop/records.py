"""The records the loop, the oracles and the label store pass between them.

A :class:`Query` goes out to an oracle, an :class:`Answer` comes back and is stored. This module
imports nothing of the loop, the oracles or the store, so each of them (the store above all) can
depend on it without depending on the others; :mod:`oracles.base` re-exports the names for
oracle authors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

AnswerKind = Literal["label", "skip", "unsure"]


@dataclass(frozen=True)
class Query:
    """One item the loop asks about.

    ``x`` is the item's feature row, ``raw`` what a person should see (text, image, table row),
    ``score`` the strategy's score and ``prediction`` the current model's guess, when known.
    ``proposed_label`` is set on a relabel query (the label the influence check doubts).

    Examples
    --------
    >>> Query("item-7", score=0.42, round=3)
    Query(item_id='item-7', x=None, raw=None, score=0.42, prediction=None, round=3, proposed_label=None)
    """

    item_id: str
    x: Any = None
    raw: Any = None
    score: float | None = None
    prediction: Any = None
    round: int = 0
    proposed_label: Any = None


@dataclass(frozen=True)
class Answer:
    """One answer. ``kind`` is ``"label"`` for a label, or ``"skip"`` / ``"unsure"``.

    Examples
    --------
    >>> Answer("item-7", "cat", annotator="ann")
    Answer(item_id='item-7', label='cat', annotator='ann', kind='label', cost=1.0, extra={})
    """

    item_id: str
    label: Any = None
    annotator: str = "oracle"
    kind: AnswerKind = "label"
    cost: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


#: Called with each answer as soon as it is given. Returns ``None`` once the caller has accepted
#: and durably committed the answer, or a message saying why it was rejected.
AnswerSink = Callable[[Answer], str | None]

#: item id → the annotators a batch's item is given to.
Assignment = Mapping[str, Sequence[str]]

#: Called with a batch's assignment before anyone is asked (the loop persists it in the store).
AssignmentSink = Callable[[Assignment], None]
