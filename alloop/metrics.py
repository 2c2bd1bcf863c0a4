"""Test metrics of a fitted model: the learning-curve values the loop reports."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
#: metrics where lower is better (the others are maximised)
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def evaluate(model: Any, X: Any, y: np.ndarray, classes: np.ndarray | None = None) -> dict[str, float]:
    """Test metrics for a fitted model: accuracy, macro-F1, log-loss; or RMSE, MAE, R²."""
    y = np.asarray(y)
    if getattr(model, "task", "classification") == "regression":
        pred = np.asarray(model.predict(X), dtype=np.float64)
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
            "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": float(skm.r2_score(y, pred)),
        }
    labels = np.asarray(classes if classes is not None else model.classes_)
    if not hasattr(model, "predict_proba"):  # e.g. LinearSVC: no probabilities, no log-loss
        pred = np.asarray(model.predict(X))
        return {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        }
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    pred = labels[proba.argmax(axis=1)]
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels)),
    }


def default_metric(task: str) -> str:
    """The headline metric of a task: accuracy, or RMSE for regression."""
    return "rmse" if task == "regression" else "accuracy"
