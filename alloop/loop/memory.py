"""A stateful strategy's state across rounds, kept in the label store (the portfolio's arm records).

The loop saves :meth:`~strategies.base.StrategyMemory.state` after round r's scores and
*before* round r's requests, under one meta key that holds the state after round r and the
one before it. A kill between the two writes leaves no requests for round r, so round r is
selected again from the state before it: the same picks, since the model, the round's
generator and that state are the same. A kill after both leaves requests and their state.
Either way the next scores start from the state an uninterrupted run has.
"""

from __future__ import annotations

from typing import Any

#: the meta key: {"round": r, "after": state after round r's scores,
#: "before_round": r' (the last scored round before r, or None), "before": its state}
KEY = "strategy_state"


def save(store: Any, strategy: Any, round_: int) -> None:
    """Persist the strategy's state after round ``round_``'s scores (stateless: nothing).

    Examples
    --------
    >>> from alloop.store import LabelStore
    >>> from strategies.portfolio import Portfolio
    >>> store, portfolio = LabelStore(":memory:"), Portfolio(["margin", "random"])
    >>> portfolio.rewards, portfolio.incumbent = [[0.5, 0.0]], 1
    >>> save(store, portfolio.strategy(), 1)
    >>> portfolio.restore(None)  # e.g. a new process
    >>> restore(store, portfolio.strategy(), 1)
    >>> portfolio.rewards, portfolio.incumbent
    ([[0.5, 0.0]], 1)
    >>> restore(store, portfolio.strategy(), 0)  # round 1 selected again: the state before it
    >>> portfolio.rewards, portfolio.incumbent
    ([], 0)
    """
    if strategy.memory is None:
        return
    held = store.get_meta(KEY)
    if held is None:
        before_round, before = None, None
    elif held["round"] == round_:  # this round selected again after a kill: keep what preceded it
        before_round, before = held["before_round"], held["before"]
    else:
        before_round, before = held["round"], held["after"]
    store.set_meta(KEY, {"round": round_, "after": strategy.memory.state(),
                         "before_round": before_round, "before": before})


def restore(store: Any, strategy: Any, round_: int) -> None:
    """Set the strategy to its state after the scores of rounds ≤ ``round_`` (none: fresh)."""
    if strategy.memory is None:
        return
    held = store.get_meta(KEY)
    if held is None or held["round"] <= round_:
        strategy.memory.restore(None if held is None else held["after"])
    elif held["before_round"] is None or held["before_round"] <= round_:
        strategy.memory.restore(held["before"])
    else:
        raise RuntimeError(
            f"label store {store.path} holds {strategy.name!r}'s state after round "
            f"{held['round']} and {held['before_round']}, not after round {round_}: the store "
            "is ahead of this run; resume it with alloop run CONFIG --resume"
        )


def report(store: Any, strategy: Any, round_: int) -> dict[str, float]:
    """The strategy's report of round ``round_``'s scores, for a round closed by a process
    that did not score it (``teach`` after a kill); {} for strategies without one."""
    if strategy.report is None:
        return {}
    restore(store, strategy, round_)
    return strategy.report()
