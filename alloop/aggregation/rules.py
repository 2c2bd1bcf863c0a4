"""The label rule: which aggregate of the answer log becomes each item's training label."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from alloop.aggregation.dawid_skene import dawid_skene
from alloop.aggregation.majority import latest_label, majority_vote, votes

#: the label rules, by name (the loop's ``label_rule``, the CLI's ``--rule``)
LABEL_RULES = ("latest", "majority", "dawid-skene")


def aggregate(answers: Iterable[Any], rule: str = "latest") -> dict[str, Hashable]:
    """item id → its label under ``rule``, from the raw answer log (oldest first).

    ``"latest"``: each item's most recent vote (a later skip or unsure by the same annotator
    withdraws their label); ``"majority"``: :func:`~alloop.aggregation.majority_vote`;
    ``"dawid-skene"``: the labels of :func:`~alloop.aggregation.dawid_skene`. The answers are
    read, never changed.

    Examples
    --------
    >>> log = [("x", "ann", 1), ("x", "bob", 2), ("x", "cy", 2)]
    >>> aggregate(log), aggregate(log, "majority")
    ({'x': 2}, {'x': 2})
    >>> aggregate(log, "vote")
    Traceback (most recent call last):
    ...
    ValueError: unknown label rule 'vote'; expected latest, majority or dawid-skene
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; expected latest, majority or dawid-skene")
    log = list(answers)
    if rule == "latest":
        return latest_label(log)
    if rule == "majority":
        return majority_vote(log)
    return dict(dawid_skene(log).labels) if votes(log) else {}
