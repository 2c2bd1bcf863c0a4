"""``oracle: {kind: simulated}``: the ground truth answers, with optional noise and annotators."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from alloop.config.base import Section
from alloop.config.oracle.base import OracleBase


class AnnotatorConfig(Section):
    """One simulated annotator (``oracle.annotators``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-@]+$", description="the annotator's id")
    noise: float = Field(0.0, ge=0.0, lt=1.0, description="their symmetric label noise")


class SimulatedConfig(OracleBase):
    """Answers from the data set's own labels: the setting of benchmarks and ``alloop compare``."""

    kind: Literal["simulated"] = Field(
        "simulated", description="simulated | terminal | files | web | label-studio"
    )
    noise: float = Field(0.0, ge=0.0, lt=1.0, description="symmetric label noise")
    confusion: list[list[float]] | None = Field(
        None, description="a row-stochastic confusion matrix over the classes"
    )
    cost: float = Field(1.0, ge=0.0, description="cost recorded per answer")
    annotators: list[AnnotatorConfig] | None = Field(
        None, description="several simulated annotators: [{id, noise}]"
    )
    k: int = Field(1, gt=0, strict=True, description="annotators per item (redundancy)")
    policy: Literal["round-robin", "least-loaded"] = Field(
        "round-robin", description="several annotators: round-robin | least-loaded"
    )

    @field_validator("annotators", mode="before")
    @classmethod
    def _as_sections(cls, value: Any) -> Any:
        if isinstance(value, list) and value and isinstance(value[0], str):
            raise ValueError("simulated annotators are given as [{id: ..., noise: ...}]")
        return value

    @model_validator(mode="after")
    def _enough_annotators(self) -> SimulatedConfig:
        if self.annotators and self.k > len(self.annotators):
            raise ValueError(f"oracle.k = {self.k} exceeds the {len(self.annotators)} annotators")
        return self
