"""Stopping rules: small callables ``rule(state) -> bool`` the loop asks before each round.

The loop's own limits are rules of the same kind, named by the stop reason they give:
``max_rounds`` (:class:`MaxRounds`), ``budget``, ``pool_exhausted``, ``target``, ``no_answers``
and ``stable`` (:class:`Stable`: the share of changed predictions stayed under ``tol`` for
``patience`` rounds). They look at :class:`LoopState` only.

The rules below also have a per-round *statistic* (logged as the round metric ``stop_<name>``, so it is
stored, tracked and survives ``--resume``) and a decision over the history of that statistic:

* ``kappa-average`` (Bloodgood & Vijay-Shanker, 2009): Cohen's κ between the predictions of
  this round's and the previous round's model on the unlabeled pool; stop when the mean κ of
  the last ``window`` rounds is at least ``threshold``;
* ``overall-uncertainty`` (Zhu et al., 2008): the mean predictive entropy of the unlabeled pool,
  divided by log C; stop when it is at most ``threshold``;
* ``max-confidence`` (Zhu et al., 2008): the largest least-confidence 1 − max_c p(c|x) over the
  unlabeled pool; stop when even the most uncertain item is at most ``threshold``;
* ``classification-change`` (Zhu et al., 2008): the share of unlabeled items whose predicted
  class changed since the previous round; stop when it is at most ``threshold`` (0: none);
* ``delta-f`` (Laws & Schütze, 2008; Altschuler & Bloodgood, 2019): 1 − macro F1 agreement of
  the previous round's predictions with this round's on the unlabeled pool; stop when each of
  the last ``window`` values is at most ``threshold``;
* ``ssi-quiet``: the largest SSI (squared s-influence) of any remaining candidate; stop when it
  is at most ``threshold``, i.e. no remaining label would move the validation-selected
  regularity. It needs a differentiable model and validation data.

The statistics are pure functions of predictions and probabilities (``kappa``, ``delta_f``…);
the rules know nothing of pools or trackers. ``make_rule(name, **params)`` builds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class StopInputs:
    """What a statistic may look at after a round's refit."""

    model: Any
    #: the previous round's model (None in round 0)
    previous_model: Any
    #: features of the items still unlabeled after this round
    X_unlabeled: Any
    #: the loop context a strategy would get (X_labeled, X_val, rng, ...), for ssi-quiet
    context: Mapping[str, Any]
    #: ``scores(name, model, X, **context)``: a registered strategy's scores, given by the loop
    #: (the rules stay below the strategy registry, which the config may not import)
    scores: Callable[..., np.ndarray] | None = None


# ---------------------------------------------------------------- the statistics (pure)
def kappa(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's κ between two label vectors; 1.0 when they agree on every item.

    Examples
    --------
    >>> round(kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])), 4)
    0.5
    """
    from sklearn.metrics import cohen_kappa_score

    previous, current = np.asarray(previous), np.asarray(current)
    if np.array_equal(previous, current):
        return 1.0  # sklearn gives nan when both are constant and equal
    return float(cohen_kappa_score(previous, current))


def normalized_entropy(proba: np.ndarray) -> np.ndarray:
    """−Σ p log p / log C per row, in [0, 1]."""
    from scipy.special import xlogy

    proba = np.asarray(proba, dtype=np.float64)
    return (0.0 - xlogy(proba, proba).sum(axis=1)) / np.log(proba.shape[1])


def overall_uncertainty(proba: np.ndarray) -> float:
    """Mean normalised predictive entropy over the rows of ``proba``."""
    return float(normalized_entropy(proba).mean())


def max_uncertainty(proba: np.ndarray) -> float:
    """Largest least-confidence 1 − max_c p(c|x) over the rows of ``proba``."""
    return float((1.0 - np.asarray(proba).max(axis=1)).max())


def changed_share(previous: np.ndarray, current: np.ndarray) -> float:
    """Share of items whose predicted label differs."""
    return float(np.mean(np.asarray(previous) != np.asarray(current)))


def delta_f(previous: np.ndarray, current: np.ndarray) -> float:
    """1 − macro F1 of ``current`` against ``previous`` taken as the reference.

    Examples
    --------
    >>> delta_f(np.array([0, 1, 1]), np.array([0, 1, 1]))
    0.0
    """
    from sklearn.metrics import f1_score

    labels = np.union1d(previous, current)
    return float(1.0 - f1_score(previous, current, labels=labels, average="macro", zero_division=1.0))


@dataclass(frozen=True)
class LoopState:
    """What a stop rule sees before a round starts."""

    #: the round about to start (1 for the first acquisition round)
    round: int
    #: labeled items so far
    labeled: int
    #: items left in the pool to ask about
    unlabeled: int
    #: one mapping of metrics per finished round, oldest first (``round``, ``labels``, ...)
    curve: Sequence[Mapping[str, Any]]


class StopRule(Protocol):
    """A stop rule: its ``name`` is the stop reason when ``rule(state)`` is true."""

    name: str

    def __call__(self, state: LoopState) -> bool: ...


# ---------------------------------------------------------------- the loop's own limits
@dataclass(frozen=True)
class MaxRounds:
    """Stop after ``rounds`` acquisition rounds (round 0, the initial set, not counted)."""

    rounds: int
    name = "max_rounds"

    def __call__(self, state: LoopState) -> bool:
        return state.round > self.rounds


@dataclass(frozen=True)
class Budget:
    """Stop once ``labels`` items are labeled (the initial set included)."""

    labels: int
    name = "budget"

    def __call__(self, state: LoopState) -> bool:
        return state.labeled >= self.labels


@dataclass(frozen=True)
class PoolExhausted:
    """Stop when no unlabeled item is left."""

    name = "pool_exhausted"

    def __call__(self, state: LoopState) -> bool:
        return state.unlabeled == 0


@dataclass(frozen=True)
class TargetReached:
    """Stop once the last round's ``metric`` reached ``value`` (≤ for losses and errors)."""

    metric: str
    value: float
    name = "target"

    def __call__(self, state: LoopState) -> bool:
        from alloop.metrics import LOWER_IS_BETTER

        last = state.curve[-1].get(self.metric) if state.curve else None
        if last is None:
            return False
        return last <= self.value if self.metric in LOWER_IS_BETTER else last >= self.value


@dataclass(frozen=True)
class NoAnswers:
    """Stop after ``rounds`` consecutive rounds in which nobody answered anything."""

    rounds: int = 3
    name = "no_answers"

    def __call__(self, state: LoopState) -> bool:
        silent = state.curve[-self.rounds:]
        return len(state.curve) > self.rounds and all(row.get("answered", 1) == 0 for row in silent)


@dataclass(frozen=True)
class Stable:
    """Stop when at most ``tol`` of the evaluation predictions changed in each of the last
    ``patience`` rounds (the round metric ``changed``)."""

    patience: int
    tol: float
    name = "stable"

    def __call__(self, state: LoopState) -> bool:
        changed = [row.get("changed") for row in state.curve[-self.patience:]]
        return len(changed) == self.patience and all(c is not None and c <= self.tol for c in changed)


# ---------------------------------------------------------------- the rules with a statistic
@dataclass(frozen=True)
class _Rule:
    name = ""

    @property
    def metric(self) -> str:
        """The round metric that holds this rule's statistic."""
        return "stop_" + self.name.replace("-", "_")

    def statistic(self, inputs: StopInputs) -> float | None:
        raise NotImplementedError

    def reached(self, values: Sequence[float | None]) -> bool:
        """Whether the rule fires, given its statistic of every round so far (oldest first)."""
        raise NotImplementedError

    def __call__(self, state: LoopState) -> bool:
        return self.reached([row.get(self.metric) for row in state.curve])


def _predictions(inputs: StopInputs) -> tuple[np.ndarray, np.ndarray] | None:
    if inputs.previous_model is None or inputs.X_unlabeled.shape[0] == 0:
        return None
    return inputs.previous_model.predict(inputs.X_unlabeled), inputs.model.predict(inputs.X_unlabeled)


def _last(values: Sequence[float | None], window: int) -> list[float] | None:
    tail = list(values[-window:])
    if len(tail) < window or any(v is None or not np.isfinite(v) for v in tail):
        return None
    return tail


@dataclass(frozen=True)
class KappaAverage(_Rule):
    """Mean κ of successive models' predictions over the last ``window`` rounds ≥ threshold."""

    threshold: float = 0.99
    window: int = 3
    name = "kappa-average"

    def statistic(self, inputs: StopInputs) -> float | None:
        pair = _predictions(inputs)
        return None if pair is None else kappa(*pair)

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, self.window)
        return tail is not None and float(np.mean(tail)) >= self.threshold


@dataclass(frozen=True)
class OverallUncertainty(_Rule):
    """Mean normalised entropy of the unlabeled pool ≤ threshold."""

    threshold: float = 0.05
    name = "overall-uncertainty"

    def statistic(self, inputs: StopInputs) -> float | None:
        if inputs.X_unlabeled.shape[0] == 0:
            return None
        return overall_uncertainty(inputs.model.predict_proba(inputs.X_unlabeled))

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, 1)
        return tail is not None and tail[0] <= self.threshold


@dataclass(frozen=True)
class MaxConfidence(_Rule):
    """The most uncertain unlabeled item's 1 − max p ≤ threshold."""

    threshold: float = 0.1
    name = "max-confidence"

    def statistic(self, inputs: StopInputs) -> float | None:
        if inputs.X_unlabeled.shape[0] == 0:
            return None
        return max_uncertainty(inputs.model.predict_proba(inputs.X_unlabeled))

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, 1)
        return tail is not None and tail[0] <= self.threshold


@dataclass(frozen=True)
class ClassificationChange(_Rule):
    """Share of unlabeled items whose prediction changed ≤ threshold (default: none changed)."""

    threshold: float = 0.0
    name = "classification-change"

    def statistic(self, inputs: StopInputs) -> float | None:
        pair = _predictions(inputs)
        return None if pair is None else changed_share(*pair)

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, 1)
        return tail is not None and tail[0] <= self.threshold


@dataclass(frozen=True)
class DeltaF(_Rule):
    """1 − F1 agreement of successive predictions ≤ threshold in each of the last ``window`` rounds."""

    threshold: float = 0.005
    window: int = 3
    name = "delta-f"

    def statistic(self, inputs: StopInputs) -> float | None:
        pair = _predictions(inputs)
        return None if pair is None else delta_f(*pair)

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, self.window)
        return tail is not None and max(tail) <= self.threshold


@dataclass(frozen=True)
class SSIQuiet(_Rule):
    """The largest SSI over the remaining candidates ≤ threshold."""

    threshold: float = 1e-4
    name = "ssi-quiet"

    def statistic(self, inputs: StopInputs) -> float | None:
        if inputs.X_unlabeled.shape[0] == 0 or inputs.context.get("X_val") is None:
            return None
        if inputs.scores is None:
            raise ValueError("ssi-quiet needs StopInputs.scores (the loop passes the registry's scorer)")
        context = {k: v for k, v in inputs.context.items() if k in ("X_val", "y_val", "X_labeled", "y_labeled", "rng")}
        return float(np.max(inputs.scores("ssi", inputs.model, inputs.X_unlabeled, **context)))

    def reached(self, values: Sequence[float | None]) -> bool:
        tail = _last(values, 1)
        return tail is not None and tail[0] <= self.threshold


RULES: dict[str, Callable[..., _Rule]] = {
    rule.name: rule
    for rule in (KappaAverage, OverallUncertainty, MaxConfidence, ClassificationChange, DeltaF, SSIQuiet)
}


def make_rule(name: str, **params: Any) -> _Rule:
    """The stopping rule ``name`` with ``params`` (threshold, window); clear errors otherwise.

    Examples
    --------
    >>> make_rule("kappa-average", threshold=0.95).window
    3
    """
    if name not in RULES:
        raise ValueError(f"unknown stopping rule {name!r}; valid rules: {', '.join(RULES)}")
    rule = RULES[name]
    valid = [f.name for f in fields(rule)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"stopping rule {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid)}"
        )
    made = rule(**params)
    if getattr(made, "window", 1) < 1:
        raise ValueError(f"stopping rule {name!r}: window must be a positive integer")
    return made


def stop_statistics(rules: Sequence[Any], inputs: StopInputs) -> dict[str, float]:
    """Each rule's statistic for this round, keyed by its metric (rules without one left out)."""
    out = {}
    for rule in rules:
        if not isinstance(rule, _Rule):  # the loop's limits have no statistic
            continue
        value = rule.statistic(inputs)
        if value is not None:
            out[rule.metric] = float(value)
    return out


def first_reached(
    rules: Sequence[Any], curve: Sequence[Mapping[str, Any]], state: LoopState | None = None
) -> str | None:
    """The name of the first rule that fires on ``state`` (or the rounds of ``curve``), or None."""
    state = state if state is not None else LoopState(len(curve), 0, 1, curve)
    for rule in rules:
        if rule(state):
            return rule.name
    return None
