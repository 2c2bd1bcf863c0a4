"""The answer log's hash chain: each row's hash covers its fields and the previous row's hash.

Pure functions, no database: :class:`~alloop.store.label_store.LabelStore` stores the hash with
each answer, :func:`first_broken` re-derives the chain from the rows as read back. A row edited,
deleted or inserted out of place (even by someone who dropped the append-only triggers) makes
its own hash, or the next row's, disagree; a row removed from the *end* of the log leaves no
trace in the chain itself (see docs/label-store.md for what each backend guarantees).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


class ChainBrokenError(RuntimeError):
    """The answer log does not match its hash chain: a row was changed behind the triggers."""


#: the "previous hash" of the first answer
GENESIS = "0" * 64


def answer_hash(
    previous: str,
    item_id: str,
    label: str | None,
    kind: str,
    annotator: str,
    round: int,
    cost: float | None,
    created_at: float,
) -> str:
    """SHA-256 (hex) of one answer row chained to the previous row's hash.

    ``label`` is the stored JSON text of the label (None for skips). Numbers are normalised the
    way both databases return them (round an int, cost and created_at floats), so a hash taken
    before the insert matches the row read back.

    Examples
    --------
    >>> h = answer_hash(GENESIS, "a", "1", "label", "ann", 0, None, 1.5)
    >>> len(h), h == answer_hash(GENESIS, "a", "1", "label", "ann", 0, None, 1.5)
    (64, True)
    >>> h == answer_hash(GENESIS, "a", "2", "label", "ann", 0, None, 1.5)
    False
    """
    fields = [previous, str(item_id), label, kind, annotator, int(round),
              None if cost is None else float(cost), float(created_at)]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=True).encode()).hexdigest()


def first_broken(rows: Iterable[tuple[Any, ...]]) -> tuple[int, str] | None:
    """The first row whose stored hash does not match the chain, as (seq, reason); None if all do.

    Parameters
    ----------
    rows : iterable of tuple
        ``(seq, item_id, label_json, kind, annotator, round, cost, created_at, hash)`` in
        ``seq`` order, as stored.

    Examples
    --------
    >>> h1 = answer_hash(GENESIS, "a", "1", "label", "ann", 0, None, 1.0)
    >>> h2 = answer_hash(h1, "b", "0", "label", "ann", 0, None, 2.0)
    >>> first_broken([(1, "a", "1", "label", "ann", 0, None, 1.0, h1),
    ...               (2, "b", "0", "label", "ann", 0, None, 2.0, h2)]) is None
    True
    >>> first_broken([(1, "a", "1", "label", "ann", 0, None, 1.0, h1),
    ...               (2, "b", "1", "label", "ann", 0, None, 2.0, h2)])[0]
    2
    """
    previous = GENESIS
    for row in rows:
        seq, *fields, stored = row
        expected = answer_hash(previous, *fields)
        if stored != expected:
            reason = ("no hash" if not stored else
                      "its fields or its place in the log were changed after it was written")
            return int(seq), reason
        previous = stored
    return None
