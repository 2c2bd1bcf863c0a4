"""The oracle protocol: a batch of queries goes out, answers (possibly partial) come back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


#: Called with each answer as soon as it is given. Returns ``None`` once the caller has accepted
#: and durably committed the answer, or a message saying why it was rejected.
AnswerSink = Callable[[Answer], str | None]


@runtime_checkable
class Oracle(Protocol):
    """Anything that answers queries. It may answer only some of them.

    ``request(queries, on_answer=None)`` returns the accepted answers. With ``on_answer`` the
    oracle hands over each answer the moment it is given: ``None`` back means accepted and
    committed, a string means rejected (a person is re-asked, or the problem is reported) and
    the answer is left out of the returned list. Without it the caller stores the returned
    answers afterwards. Oracles that wait on people also take ``min_share`` (the fraction of the
    batch answered before returning) and ``timeout`` (seconds; return what is there when it
    passes), so a round never waits forever.
    """

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]: ...


def check_wait_settings(
    min_share: float, timeout: float | None, poll_interval: float | None = None
) -> None:
    """Raise a clear error for the settings of an oracle that waits on people."""
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1]; got {min_share!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or ≥ 0 seconds; got {timeout!r}")
    if poll_interval is not None and poll_interval < 0:
        raise ValueError(f"poll_interval must be ≥ 0 seconds; got {poll_interval!r}")
