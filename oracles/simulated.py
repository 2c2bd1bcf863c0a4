"""An oracle that answers from ground truth, optionally with label noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from oracles.base import Answer, AnswerSink, OracleBase, Query


class SimulatedOracle(OracleBase):
    """Answers from known labels, for experiments.

    Parameters
    ----------
    truth : mapping item id → label
    noise : float
        Symmetric label noise: with this probability the answer is a uniformly drawn *other*
        class (classification only).
    confusion : array (C, C), optional
        Row-stochastic matrix ``P(answer = j | true = i)`` over ``classes``; overrides ``noise``.
    classes : sequence, optional
        The label set (needed for noise); default: the distinct values of ``truth``.
    cost : float or mapping item id → float
        Cost recorded with each answer.
    relabel_noise : float
        Noise of an answer to a relabel query (one that comes with a proposed label): a second,
        careful look. Default 0: such answers are the ground truth.
    seed : int
        Noise is drawn from a generator keyed by (seed, item id), so an item gets the same
        answer however often, and in whatever order, it is asked.

    Examples
    --------
    >>> oracle = SimulatedOracle({"a": 0, "b": 1})
    >>> [a.label for a in oracle.request([Query("b"), Query("a")])]
    [1, 0]
    """

    def __init__(
        self,
        truth: Mapping[str, Any],
        noise: float = 0.0,
        confusion: Any | None = None,
        classes: Sequence[Any] | None = None,
        cost: float | Mapping[str, float] = 1.0,
        seed: int = 0,
        annotator: str = "simulated",
        relabel_noise: float = 0.0,
    ) -> None:
        self.truth = {str(k): v for k, v in truth.items()}
        if not 0.0 <= noise < 1.0:
            raise ValueError(f"noise must be in [0, 1); got {noise!r}")
        self.noise = noise
        self.classes = list(classes) if classes is not None else sorted(set(self.truth.values()))
        self.confusion = None
        if confusion is not None:
            M = np.asarray(confusion, dtype=float)
            k = len(self.classes)
            if M.shape != (k, k) or (M < 0).any() or not np.allclose(M.sum(1), 1.0):
                raise ValueError(
                    f"confusion must be a row-stochastic {k}×{k} matrix over classes "
                    f"{self.classes!r}; got shape {M.shape}"
                )
            self.confusion = M
        if (noise or confusion is not None) and len(self.classes) < 2:
            raise ValueError("label noise needs at least two classes")
        self.cost = cost
        self.seed = seed
        self.relabel_noise = relabel_noise
        self.annotator = annotator

    def _rng(self, item_id: str) -> np.random.Generator:
        key = [self.seed, *item_id.encode()]
        return np.random.default_rng(key)

    def _answer(self, item_id: str) -> Any:
        if item_id not in self.truth:
            raise KeyError(f"the simulated oracle has no ground truth for item {item_id!r}")
        y = self.truth[item_id]
        if self.confusion is None and not self.noise:
            return y
        rng = self._rng(item_id)
        i = self.classes.index(y)
        if self.confusion is not None:
            return self.classes[rng.choice(len(self.classes), p=self.confusion[i])]
        if rng.random() < self.noise:
            others = [c for c in self.classes if c != y]
            return others[rng.integers(len(others))]
        return y

    def _recheck(self, item_id: str) -> Any:
        """A relabel answer: the truth, except with probability ``relabel_noise``."""
        y = self.truth[item_id]
        if not self.relabel_noise:
            return y
        rng = np.random.default_rng([self.seed, 1, *item_id.encode()])
        if rng.random() < self.relabel_noise:
            others = [c for c in self.classes if c != y]
            return others[rng.integers(len(others))]
        return y

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        """Answer every query; with ``on_answer``, hand each over at once and keep the accepted."""
        out = []
        for q in queries:
            cost = self.cost.get(q.item_id, 1.0) if isinstance(self.cost, Mapping) else self.cost
            label = self._answer(q.item_id) if q.proposed_label is None else self._recheck(q.item_id)
            answer = Answer(q.item_id, label, self.annotator, "label", float(cost))
            if on_answer is None or on_answer(answer) is None:
                out.append(answer)
        return out
