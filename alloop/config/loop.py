"""``loop:``: the initial set, batch size, rounds and stopping rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from alloop.config.base import Section


class TargetConfig(Section):
    metric: str
    value: float

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        from alloop.metrics import check_metric_name

        return check_metric_name(metric)


class StabilizeConfig(Section):
    patience: int = Field(3, gt=0, strict=True)
    tol: float = Field(0.01, ge=0.0, le=1.0)


class RelabelConfig(Section):
    every: int = Field(1, gt=0, strict=True, description="relabel every this many rounds")
    count: int = Field(5, gt=0, strict=True, description="labeled items sent back per relabel round")


class InitialConfig(Section):
    """``loop.initial: {size: 20, strategy: typiclust}``: an initial set chosen without labels."""

    size: int = Field(20, gt=0, strict=True)
    strategy: Literal["random", "typiclust", "probcover", "kmeans"] = "random"


class StopRuleConfig(Section):
    """One entry of ``loop.stop`` (see alloop.stopping); unset parameters keep the rule's default."""

    rule: Literal[
        "kappa-average", "overall-uncertainty", "max-confidence", "classification-change",
        "delta-f", "ssi-quiet",
    ]
    threshold: float | None = None
    window: int | None = Field(None, gt=0, description="rounds averaged (kappa-average, delta-f)")

    @model_validator(mode="after")
    def _known_parameters(self) -> StopRuleConfig:
        from alloop.stopping import make_rule

        make_rule(self.rule, **self.params())  # a window on a rule without one fails here
        return self

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (("threshold", self.threshold), ("window", self.window)) if v is not None}


class LoopConfig(Section):
    # strict: `batch_size: true` is a mistake, not 1
    initial: Annotated[int, Field(gt=0, strict=True)] | InitialConfig = Field(
        20, description="size of a random initial set, or {size, strategy}"
    )
    batch_size: int = Field(10, gt=0, strict=True)
    rounds: int | None = Field(10, ge=0, strict=True)
    budget: int | None = Field(None, gt=0, strict=True)
    target: TargetConfig | None = None
    stabilize: StabilizeConfig | None = None
    stop: list[StopRuleConfig] = Field(default_factory=list, description="more stopping rules")
    relabel: RelabelConfig | None = Field(
        None, description="send FVM-flagged labels back to the oracle with a proposed label"
    )
    metrics: list[str] | None = Field(
        None, description="test metrics per round: alloop's or any scikit-learn scorer name"
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str] | None) -> list[str] | None:
        from alloop.metrics import check_metric_name

        if metrics is not None:
            if not metrics:
                raise ValueError("loop.metrics is empty; name at least one metric, or leave it unset")
            for name in metrics:
                check_metric_name(name)
        return metrics
