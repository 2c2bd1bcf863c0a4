"""Input checks shared by the influence scores: fitted model, label encoding, validation labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alloop.models.base import DifferentiableModel, NotDifferentiableError


def fitted_theta(model: Any, what: str) -> torch.Tensor:
    """θ̂ of a fitted differentiable model; a clear error otherwise."""
    if not isinstance(model, DifferentiableModel):
        raise NotDifferentiableError(
            f"{what} needs a differentiable model (an alloop GLM or torch model); got "
            f"{type(model).__name__}"
        )
    return model._check_fitted()


def encode_labels(model: DifferentiableModel, y: Any, what: str, n: int) -> torch.Tensor:
    """``model.encode_y(y)`` with the error naming which labels were bad."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{what}: expected {n} labels (one per feature row); got shape {y.shape}")
    try:
        return model.encode_y(y)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from exc


def check_validation_classes(model: DifferentiableModel, y_val: torch.Tensor, what: str) -> None:
    """Refuse a classification validation set that holds fewer than two classes."""
    if model.task != "classification":
        return
    if y_val.numel() == 0:
        raise ValueError(f"{what}: the validation set is empty")
    if torch.unique(y_val).numel() < 2:
        assert model.classes_ is not None
        only = model.classes_[int(y_val[0])]
        raise ValueError(
            f"{what}: the validation set holds a single class ({only!r}). Use a validation set "
            "with at least two classes (stratify the split)."
        )
