"""``strategy:``: how items are chosen each round.

Names and options are checked against the strategy registry by the loader
(:func:`alloop.config.loader.check_strategy`), not here: the config layer imports no registry.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alloop.config.base import Section


class StrategyConfig(Section):
    """A query strategy by its registered name, with its batch rule and options."""

    name: str = Field("entropy", description="a query strategy; see `alloop strategies`")
    batch: Literal["topk", "diverse", "kcenter"] | None = Field(
        None, description="batch rule (default: the strategy's own)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="strategy options, e.g. {tangent_method: cg}")
