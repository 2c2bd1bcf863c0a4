"""Relabel policies: queries for labeled items to send back to the oracle.

The loop calls a policy's one method, :meth:`RelabelPolicy.propose`, where a round's queries
are gathered. :class:`NoRelabel` proposes nothing; :class:`FVMRelabel` proposes, every
``every`` rounds, the ``count`` labeled items that flat-validation-minimum influence flags as
most likely mislabeled, each with the label FVM proposes. The answer is a new row in the store;
the old label stays in the history.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from alloop.data.pool import Pool
from oracles.base import Query


class RelabelPolicy(Protocol):
    def propose(self, round_: int, model: Any, pool: Pool, store: Any,
                validation: Callable[[], tuple[Any, Any, Any]]) -> list[Query]:
        """Relabel queries for this round (``model``: the previous round's fit;
        ``validation()``: the validation split, computed on demand)."""
        ...


class NoRelabel:
    """Never relabels."""

    def propose(self, round_: int, model: Any, pool: Pool, store: Any,
                validation: Callable[[], tuple[Any, Any, Any]]) -> list[Query]:
        return []


class FVMRelabel:
    """Every ``every`` rounds, the ``count`` labeled items FVM ranks as most likely mislabeled.

    Needs validation data and a differentiable classifier; a round where FVM cannot run warns
    and asks nothing. An item already sent back once is not sent back again.
    """

    def __init__(self, every: int, count: int) -> None:
        self.every, self.count = int(every), int(count)

    def propose(self, round_: int, model: Any, pool: Pool, store: Any,
                validation: Callable[[], tuple[Any, Any, Any]]) -> list[Query]:
        if round_ == 0 or round_ % self.every or model is None:
            return []
        from alloop.influence import relabel_proposals, validation_minimum_influence

        X_val, y_val, _ = validation()
        index = pool.labeled_indices()
        first: dict[str, int] = {}
        for a in store.answers(kind="label"):
            first.setdefault(a.item_id, a.round)
        # a request for an item that already had a label when asked was a relabel request
        relabeled = {i for r in range(1, round_) for i, _ in store.requests(r) if first.get(i, r) < r}
        X_l, y_l = pool.labeled_data()
        try:
            fvm = validation_minimum_influence(model, X_l, y_l, X_val, y_val, flat=True)
            proposals, _ = relabel_proposals(model, fvm.minimum.theta, X_l, X_val, y_val)
        except (ValueError, TypeError) as exc:
            warnings.warn(f"round {round_}: no relabel queries ({exc})", RuntimeWarning, stacklevel=2)
            return []
        scores = fvm.scores.numpy()
        order = [j for j in np.argsort(-scores, kind="stable") if pool.ids[index[j]] not in relabeled]
        out = []
        for j in order[: self.count]:
            p = index[j]
            proposed = proposals[j].item() if hasattr(proposals[j], "item") else proposals[j]
            out.append(Query(pool.ids[p], x=pool.features(np.array([p])),
                             raw=None if pool.raw is None else pool.raw[p],
                             score=float(scores[j]), prediction=y_l[j], round=round_,
                             proposed_label=proposed))
        return out
