"""Annotators as users: each (user, item) candidate is asked of that user's own oracle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alloop.multiuser.pool import PairPool
from oracles.base import Answer, AnswerSink, Oracle, OracleBase, Query

__all__ = ["UserRoutedOracle"]


class UserRoutedOracle(OracleBase):
    """Sends each candidate's query to the oracle of the user it names; answers carry that user.

    ``oracles`` maps each user name (an annotator id) to their own oracle, and a candidate
    ``"u17/m123"`` goes to ``oracles["u17"]``. The returned answers are stamped
    ``annotator = user``, so the label store records who answered.

    Examples
    --------
    >>> from alloop.multiuser.pool import PairPool
    >>> from oracles.simulated import SimulatedOracle
    >>> pool = PairPool([[1.0], [2.0]], [0, 1], ["a", "a"], ["ann", "bob"])
    >>> truth = {"ann/a": 1.0, "bob/a": 2.0}
    >>> oracle = UserRoutedOracle(pool, {u: SimulatedOracle(truth) for u in pool.user_names})
    >>> [(a.item_id, a.annotator) for a in oracle.request([Query("bob/a"), Query("ann/a")])]
    [('bob/a', 'bob'), ('ann/a', 'ann')]
    """

    def __init__(self, pool: PairPool, oracles: Mapping[str, Oracle]) -> None:
        missing = sorted(set(pool.user_names) - set(oracles))
        if missing:
            raise ValueError(f"no oracle for users {missing[:10]}; give one per user name")
        self.pool, self.oracles = pool, dict(oracles)

    @property
    def quit_requested(self) -> bool:
        return any(o.quit_requested for o in self.oracles.values())

    def close(self) -> None:
        for oracle in self.oracles.values():
            oracle.close()

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        groups: dict[str, list[Query]] = {}
        for q in queries:
            groups.setdefault(self.pool.user_of(q.item_id), []).append(q)
        out = []
        for user, batch in groups.items():
            for answer in self.oracles[user].request(batch):
                stamped = Answer(answer.item_id, answer.label, user, answer.kind, answer.cost)
                if on_answer is None or on_answer(stamped) is None:
                    out.append(stamped)
        return out
