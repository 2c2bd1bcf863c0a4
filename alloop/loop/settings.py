"""The loop's settings: one frozen object mirroring the config's ``loop:`` section.

The field names are the config's (``batch_size``, ``rounds``, ``budget``, ``initial``,
``target``, ``stabilize``, ``stop``, ``relabel``, ``metrics``), plus the label rule, the
unanswered-items policy, the seed and the progress bar. Options with parts are small objects
(:class:`Target`, :class:`Stabilize`, :class:`Relabel`, :class:`InitialSet`), never tuples; a
mapping with the same keys is accepted for each and converted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABEL_RULES = ("latest", "majority", "dawid-skene")
UNANSWERED = ("reoffer", "release")


@dataclass(frozen=True)
class Target:
    """Stop once the test ``metric`` reaches ``value`` (≥, or ≤ for losses and errors)."""

    metric: str
    value: float


@dataclass(frozen=True)
class Stabilize:
    """Stop when at most ``tol`` of the evaluation predictions changed for ``patience`` rounds."""

    patience: int = 3
    tol: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.patience, int | np.integer) or self.patience < 1:
            raise ValueError(f"stabilize.patience must be a positive integer; got {self.patience!r}")


@dataclass(frozen=True)
class Relabel:
    """Every ``every`` rounds, send the ``count`` labeled items FVM flags back to the oracle."""

    every: int = 1
    count: int = 5

    def __post_init__(self) -> None:
        for name in ("every", "count"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"relabel.{name} must be a positive integer; got {value!r}")


@dataclass(frozen=True)
class InitialSet:
    """An initial set of ``size`` items chosen by ``strategy`` (random, typiclust, probcover,
    kmeans; see :mod:`alloop.cold_start`)."""

    size: int = 20
    strategy: str = "random"

    def __post_init__(self) -> None:
        from alloop.cold_start import check_initial_strategy

        check_initial_strategy(self.strategy)
        if not isinstance(self.size, int | np.integer) or self.size < 1:
            raise ValueError(f"initial.size must be a positive integer; got {self.size!r}")


def _as(kind: type, value: Any, name: str) -> Any:
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        try:
            return kind(**value)
        except TypeError as exc:
            raise ValueError(f"{name} {dict(value)!r}: {exc}") from None
    raise ValueError(f"{name} must be a {kind.__name__} or a mapping of its fields; got {value!r}")


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs (the config's ``loop:`` section, in Python).

    Parameters
    ----------
    initial : int, InitialSet or sequence of ids
        Size of a random initial set (round 0), an :class:`InitialSet` chosen from the features
        without labels, or the ids to label first.
    batch_size : int
        Items asked per acquisition round.
    rounds : int or None
        Acquisition rounds after round 0 (None: until another rule stops the loop).
    budget : int, optional
        Total labels, the initial set included.
    target : Target, optional
        Stop once the test metric reaches a value.
    stabilize : Stabilize, optional
        Stop when the predictions stopped changing.
    stop : sequence of stop rules
        More stopping rules (:mod:`alloop.stopping`, e.g. ``make_rule("kappa-average")``, or a
        rule's name); each round logs their statistics as ``stop_<name>``; the first rule that
        fires ends the loop with its name as the stop reason.
    relabel : Relabel, optional
        Send FVM-flagged labels back to the oracle with a proposed label.
    metrics : sequence of str, optional
        Test metrics per round (see :mod:`alloop.metrics`).
    label_rule : {"latest", "majority", "dawid-skene"}
        How an item's label is derived from its answers.
    unanswered : {"reoffer", "release"}
        Items asked but not answered are asked again next round, or returned to the pool.
    seed : int
        Every random choice of round r draws from a generator keyed by (seed, r).
    progress : bool
        Show a progress bar over rounds.

    Examples
    --------
    >>> LoopSettings(batch_size=5, rounds=3, target={"metric": "accuracy", "value": 0.9}).target
    Target(metric='accuracy', value=0.9)
    """

    initial: int | InitialSet | Sequence[Any] = 10
    batch_size: int = 10
    rounds: int | None = 10
    budget: int | None = None
    target: Target | None = None
    stabilize: Stabilize | None = None
    stop: Sequence[Any] = field(default_factory=tuple)
    relabel: Relabel | None = None
    metrics: Sequence[str] | None = None
    label_rule: str = "latest"
    unanswered: str = "reoffer"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "target", _as(Target, self.target, "target"))
        put(self, "stabilize", _as(Stabilize, self.stabilize, "stabilize"))
        put(self, "relabel", _as(Relabel, self.relabel, "relabel"))
        if isinstance(self.initial, Mapping):
            put(self, "initial", _as(InitialSet, self.initial, "initial"))
        elif not isinstance(self.initial, int | np.integer | InitialSet):
            if isinstance(self.initial, str) or not isinstance(self.initial, Sequence | np.ndarray):
                raise ValueError(
                    f"initial must be a size, an InitialSet or a sequence of ids; got {self.initial!r}"
                )
            put(self, "initial", tuple(str(i) for i in self.initial))
        if isinstance(self.initial, int | np.integer) and self.initial < 1:
            raise ValueError(f"initial = {self.initial} must be at least 1")
        from alloop.stopping import make_rule

        put(self, "stop", tuple(make_rule(r) if isinstance(r, str) else r for r in self.stop))
        if self.metrics is not None:
            put(self, "metrics", tuple(self.metrics))
        if not isinstance(self.batch_size, int | np.integer) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {self.batch_size!r}")
        if self.rounds is not None and (not isinstance(self.rounds, int | np.integer) or self.rounds < 0):
            raise ValueError(f"rounds must be a non-negative integer or None; got {self.rounds!r}")
        if self.budget is not None and (not isinstance(self.budget, int | np.integer) or self.budget < 1):
            raise ValueError(f"budget must be a positive integer or None; got {self.budget!r}")
        if self.budget is not None and self.budget < self.initial_size:
            raise ValueError(f"budget = {self.budget} is smaller than the initial set")
        if self.label_rule not in LABEL_RULES:
            raise ValueError(
                f"label_rule must be 'latest', 'majority' or 'dawid-skene'; got {self.label_rule!r}"
            )
        if self.unanswered not in UNANSWERED:
            raise ValueError(f"unanswered must be 'reoffer' or 'release'; got {self.unanswered!r}")

    @property
    def initial_size(self) -> int:
        """How many items round 0 labels."""
        if isinstance(self.initial, InitialSet):
            return int(self.initial.size)
        if isinstance(self.initial, int | np.integer):
            return int(self.initial)
        return len(self.initial)

    @property
    def initial_strategy(self) -> str:
        """How an initial set of a given size is chosen (``random`` for a size or ids)."""
        return self.initial.strategy if isinstance(self.initial, InitialSet) else "random"

    def stop_rules(self) -> list[Any]:
        """Every stop rule in the order they are asked: the loop's limits, then ``stop``."""
        from alloop import stopping

        rules: list[Any] = []
        if self.rounds is not None:
            rules.append(stopping.MaxRounds(int(self.rounds)))
        if self.budget is not None:
            rules.append(stopping.Budget(int(self.budget)))
        rules.append(stopping.PoolExhausted())
        if self.target is not None:
            rules.append(stopping.TargetReached(self.target.metric, float(self.target.value)))
        rules.append(stopping.NoAnswers())
        if self.stabilize is not None:
            rules.append(stopping.Stable(int(self.stabilize.patience), float(self.stabilize.tol)))
        return rules + list(self.stop)
