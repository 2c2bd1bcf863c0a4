"""``scoring:``: where the pool is scored each round, one class per ``scoring.backend``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from alloop.config.base import Section


class LocalScoring(Section):
    """Score the pool in this process."""

    backend: Literal["local"] = Field("local", description="local | ray")


class RayScoring(Section):
    """Score the pool in chunks on a Ray cluster (``alloop run --ray ADDR`` sets this)."""

    backend: Literal["ray"] = "ray"
    address: str | None = Field(None, description="the cluster address (default: a local one)")
    batch_size: int = Field(8192, gt=0, description="pool rows per scoring batch")


def _default_backend(value: Any) -> Any:
    if isinstance(value, dict) and "backend" not in value:
        return {"backend": "local", **value}
    return value


ScoringConfig = Annotated[
    LocalScoring | RayScoring, Field(discriminator="backend"), BeforeValidator(_default_backend)
]
