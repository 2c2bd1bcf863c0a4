"""Model adapters: torch GLMs, torch modules, scikit-learn estimators — one protocol."""

from alloop.models.base import DifferentiableModel, Model, NotDifferentiableError
from alloop.models.glm import GLM, LinearGLM, LogisticGLM, SoftmaxGLM

__all__ = [
    "GLM",
    "DifferentiableModel",
    "LinearGLM",
    "LogisticGLM",
    "Model",
    "NotDifferentiableError",
    "SoftmaxGLM",
]
