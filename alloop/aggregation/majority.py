"""Votes from raw answers, and the simple aggregates: majority vote and latest label.

Every function here takes the raw answer log — ``(item_id, annotator, label)`` triples, or
objects with those attributes (an :class:`~alloop.records.Answer`, a stored answer) — in the order
the answers were given (the label store's order). Two rules turn the log into votes:

- an annotator's latest answer for an item is their vote (an undo or a relabel replaces the
  earlier answer; the log itself keeps both);
- a latest answer that is not a label (``kind`` "skip" or "unsure", or a triple whose label is
  None) means the annotator abstains on that item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

#: item id → annotator → (label, position in the log of that answer)
Votes = dict[str, dict[str, tuple[Hashable, int]]]


def _fields(answer: Any) -> tuple[str, str, Any]:
    if isinstance(answer, tuple | list):
        if len(answer) != 3:
            raise ValueError(
                f"an answer triple must be (item_id, annotator, label); got {answer!r}"
            )
        item, annotator, label = answer
    else:
        item, annotator, label = answer.item_id, answer.annotator, answer.label
        if getattr(answer, "kind", "label") != "label":
            label = None
    return str(item), str(annotator), label


def timed_votes(answers: Iterable[Any]) -> Votes:
    """item → annotator → (label, log position) of each annotator's latest label on the item."""
    out: Votes = {}
    for t, answer in enumerate(answers):
        item, annotator, label = _fields(answer)
        per_item = out.setdefault(item, {})
        per_item.pop(annotator, None)  # re-insert, so dict order follows recency
        if label is not None:
            per_item[annotator] = (label, t)
    return {item: v for item, v in out.items() if v}


def votes(answers: Iterable[Any]) -> dict[str, dict[str, Hashable]]:
    """item id → annotator → that annotator's vote (items nobody labeled are left out).

    Examples
    --------
    >>> log = [("x", "ann", "cat"), ("x", "bob", "dog"), ("x", "ann", "dog"), ("y", "bob", None)]
    >>> votes(log)
    {'x': {'bob': 'dog', 'ann': 'dog'}}
    """
    return {item: {a: v[0] for a, v in per.items()} for item, per in timed_votes(answers).items()}


def majority_vote(answers: Iterable[Any]) -> dict[str, Hashable]:
    """item id → the label most annotators voted for.

    A tie goes to the tied label whose latest vote is the most recent in the log (people
    correct towards the right answer more often than away from it, and the rule is
    deterministic for a given log).

    Examples
    --------
    >>> majority_vote([("x", "a", 1), ("x", "b", 2), ("x", "c", 2), ("y", "a", 1), ("y", "b", 0)])
    {'x': 2, 'y': 0}
    """
    out: dict[str, Hashable] = {}
    for item, per in timed_votes(answers).items():
        counts = Counter(label for label, _ in per.values())
        last = {label: t for label, t in per.values()}  # in log order: the latest t stays
        out[item] = max(counts, key=lambda label: (counts[label], last[label]))
    return out


def vote_counts(answers: Iterable[Any]) -> dict[str, Counter]:
    """item id → Counter of labels over the annotators' votes."""
    return {item: Counter(per.values()) for item, per in votes(answers).items()}


def latest_label(answers: Iterable[Any]) -> dict[str, Hashable]:
    """item id → the most recent vote on it (the rule for a single annotator).

    With one annotator this is their latest answer, and an item whose latest answer is a skip
    or unsure (after an undo, say) has no label. With several, another annotator's abstention
    does not remove a label.

    Examples
    --------
    >>> latest_label([("x", "a", 1), ("x", "a", 2), ("y", "a", 0), ("y", "a", None)])
    {'x': 2}
    """
    out: dict[str, Hashable] = {}
    for item, per in timed_votes(answers).items():
        out[item] = max(per.values(), key=lambda v: v[1])[0]
    return out
