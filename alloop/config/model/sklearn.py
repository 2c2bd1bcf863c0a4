"""``model: {kind: sklearn, estimator: ...}``: any scikit-learn estimator, by its dotted name."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alloop.config.base import Section


class SklearnConfig(Section):
    """A scikit-learn estimator; its own regularisation goes in ``params`` (e.g. ``{C: 0.5}``)."""

    kind: Literal["sklearn"] = "sklearn"
    estimator: str = Field(
        description="dotted scikit-learn class, e.g. sklearn.ensemble.RandomForestClassifier"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments of the model")
