"""The oracle protocol: a batch of queries goes out, answers (possibly partial) come back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

AnswerKind = Literal["label", "skip", "unsure"]


@dataclass(frozen=True)
class Query:
    """One item the loop asks about.

    ``x`` is the item's feature row, ``raw`` what a person should see (text, image, table row),
    ``score`` the strategy's score and ``prediction`` the current model's guess, when known.
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
    """One answer. ``kind`` is ``"label"`` for a label, or ``"skip"`` / ``"unsure"``."""

    item_id: str
    label: Any = None
    annotator: str = "oracle"
    kind: AnswerKind = "label"
    cost: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Oracle(Protocol):
    """Anything that answers queries. It may answer only some of them."""

    def request(self, queries: Sequence[Query]) -> list[Answer]: ...
