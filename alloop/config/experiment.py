"""The whole ``alloop run`` config: one section per concept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from alloop.config.base import Section
from alloop.config.data import DataConfig
from alloop.config.loop import LoopConfig
from alloop.config.model import GLMConfig, ModelConfig
from alloop.config.oracle import OracleConfig, SimulatedConfig, WebConfig
from alloop.config.scoring import LocalScoring, ScoringConfig
from alloop.config.strategy import StrategyConfig
from alloop.config.tracking import StoreConfig, TrackingConfig


class ExperimentConfig(Section):
    """A whole experiment: data, model, strategy, loop, oracle, tracking, store, scoring."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0, strict=True, description="a non-negative integer")
    data: DataConfig
    model: ModelConfig = Field(default_factory=GLMConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    oracle: OracleConfig = Field(default_factory=SimulatedConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    scoring: ScoringConfig = Field(default_factory=LocalScoring)

    @model_validator(mode="after")
    def _multi_user_pairs_hierarchical(self) -> ExperimentConfig:
        pairs, hierarchical = self.data.user_column is not None, self.model.kind == "hierarchical"
        if pairs != hierarchical:
            raise ValueError(
                "multi-user runs pair data.user_column/item_column with model.kind: hierarchical; "
                + ("set model.kind: hierarchical" if pairs else "set data.user_column and item_column")
            )
        return self

    def tokens_path(self) -> Path:
        """The web page's annotator token file."""
        if isinstance(self.oracle, WebConfig) and self.oracle.tokens:
            return Path(self.oracle.tokens)
        return Path(".alloop") / self.name / "tokens.sqlite"

    def store_path(self) -> Path:
        """The label store file (``store.path``, else one per strategy and seed)."""
        if self.store.path:
            return Path(self.store.path)
        return Path(".alloop") / self.name / f"{self.strategy.name}-seed{self.seed}.sqlite"
