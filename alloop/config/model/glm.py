"""``model: {kind: logistic | linear}``: the GLMs, fitted by Newton."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from alloop.config.model.placement import Placement
from alloop.config.model.strength import Strength


class GLMConfig(Strength, Placement):
    """Logistic (binary or softmax) or linear (ridge) regression."""

    #: the constructor arguments of :class:`~alloop.models.glm.GLM` that ``params`` may set
    #: (``s``, ``likelihood``, ``device`` and ``dtype`` come from the config's own fields)
    PARAMS: ClassVar[tuple[str, ...]] = (
        "fit_intercept", "max_iter", "newton_max_params", "sigma2", "solver", "tol", "warm_start",
    )

    kind: Literal["logistic", "linear"] = Field(
        "logistic", description="logistic (binary or softmax) | linear (ridge) | mlp | sklearn | hierarchical"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments of the model")
