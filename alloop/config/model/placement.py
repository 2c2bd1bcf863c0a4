"""``model: {device:, dtype:}``: where the models alloop fits itself (GLMs, MLP) compute."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alloop.config.base import Section


class Placement(Section):
    """The torch device and floating dtype of a GLM or MLP, and of the scores computed on it."""

    device: str = Field(
        "cpu", pattern=r"^(cpu|cuda|auto|cuda:\d+)$",
        description="cpu | cuda | cuda:<index> | auto (cuda when torch sees one, else cpu)",
    )
    dtype: Literal["float32", "float64"] | None = Field(
        None, description="float32 | float64 (default: float64 on the CPU, float32 on a GPU)"
    )
