"""What the loop hands back: a finished run's result, and one round's open queries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from oracles.base import Query


@dataclass
class LoopResult:
    """What a finished (or stopped) loop returns."""

    curve: pd.DataFrame
    model: Any
    pool: Any
    stop_reason: str | None
    run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Queries(Sequence[Query]):
    """The open queries of one round (:meth:`ActiveLoop.query`); empty once the loop stops.

    ``stop_reason`` says why there is nothing more to ask (a stop rule's name), else None.
    """

    round: int
    items: tuple[Query, ...] = ()
    stop_reason: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def __iter__(self) -> Iterator[Query]:
        return iter(self.items)

    @property
    def ids(self) -> list[str]:
        """The queried items' ids, in order."""
        return [q.item_id for q in self.items]
