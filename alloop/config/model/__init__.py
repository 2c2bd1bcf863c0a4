"""``model:``: one config class per ``model.kind``, chosen by that field.

Examples
--------
>>> from pydantic import TypeAdapter
>>> TypeAdapter(ModelConfig).validate_python({"kind": "mlp", "hidden": [8]}).hidden
[8]
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from alloop.config.model.glm import GLMConfig
from alloop.config.model.hierarchical import HierarchicalConfig
from alloop.config.model.mlp import MLPConfig
from alloop.config.model.placement import Placement
from alloop.config.model.sklearn import SklearnConfig
from alloop.config.model.strength import Strength


def _default_kind(value: Any) -> Any:
    """``kind`` may be left out: logistic, as before the union."""
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "logistic", **value}
    return value


ModelConfig = Annotated[
    GLMConfig | MLPConfig | SklearnConfig | HierarchicalConfig, Field(discriminator="kind"), BeforeValidator(_default_kind)
]

__all__ = ["GLMConfig", "HierarchicalConfig", "MLPConfig", "ModelConfig", "Placement", "SklearnConfig", "Strength"]
