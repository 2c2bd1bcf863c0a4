"""Model adapters: torch GLMs, torch modules, scikit-learn estimators — one protocol."""

from alloop.models.base import DifferentiableModel, Model, NotDifferentiableError
from alloop.models.glm import GLM, LinearGLM, LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP, TorchModel
from alloop.models.sklearn_adapter import SklearnModel, as_model, from_sklearn

__all__ = [
    "GLM",
    "DifferentiableModel",
    "LinearGLM",
    "LogisticGLM",
    "MLP",
    "Model",
    "NotDifferentiableError",
    "SklearnModel",
    "SoftmaxGLM",
    "TorchModel",
    "as_model",
    "from_sklearn",
]
