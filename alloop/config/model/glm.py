"""``model: {kind: logistic | linear}``: the GLMs, fitted by Newton."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alloop.config.model.placement import Placement
from alloop.config.model.strength import Strength


class GLMConfig(Strength, Placement):
    """Logistic (binary or softmax) or linear (ridge) regression."""

    kind: Literal["logistic", "linear"] = Field(
        "logistic", description="logistic (binary or softmax) | linear (ridge) | mlp | sklearn | hierarchical"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments of the model")
