"""Test metrics of a fitted model: the learning-curve values the loop reports.

A metric is named as in scikit-learn. The defaults are alloop's own short names -- accuracy,
macro_f1 and log_loss for classification, rmse, mae and r2 for regression -- and any
scikit-learn scorer name (``sklearn.metrics.get_scorer_names()``: ``balanced_accuracy``,
``average_precision``, ``f1_weighted``, ``neg_brier_score``, ...) can be added through
``loop.metrics``. Scorer names keep scikit-learn's sign convention (``neg_*`` are negated, so
higher is always better for them). ``roc_auc`` is the ROC-AUC of binary labels and, for several
classes, the one-vs-rest macro average (scikit-learn's ``roc_auc_ovr``).

Metrics that read probabilities (log_loss, roc_auc, average_precision, ...) are refused up
front, by :func:`check_metrics`, for a model without ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
#: alloop's own names, computed here; ``roc_auc`` also covers several classes (ovr, macro)
OWN_METRICS = {
    "accuracy": "classification", "macro_f1": "classification", "log_loss": "classification",
    "roc_auc": "classification", "rmse": "regression", "mae": "regression", "r2": "regression",
}
#: metrics where lower is better (the others are maximised)
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
_NEED_PROBA = frozenset({"log_loss", "roc_auc"})


class MetricError(ValueError):
    """An unknown metric, or one the model cannot give (probabilities without predict_proba)."""


@cache
def _scorer_names() -> frozenset[str]:
    return frozenset(skm.get_scorer_names())


def known_metrics() -> list[str]:
    """Every valid metric name: alloop's own, then scikit-learn's scorers."""
    return [*OWN_METRICS, *sorted(_scorer_names() - set(OWN_METRICS))]


def needs_proba(name: str) -> bool:
    """Whether the metric reads predicted probabilities (or scores) rather than labels."""
    if name in OWN_METRICS:
        return name in _NEED_PROBA
    # scikit-learn's scorers say which response they read; not "predict" means scores/probas
    method = getattr(skm.get_scorer(name), "_response_method", "predict")
    return method != "predict"


def check_metric_name(name: str) -> str:
    """``name`` if it is alloop's or a scikit-learn scorer's, else a :class:`MetricError`."""
    if name in OWN_METRICS or name in _scorer_names():
        return name
    import difflib

    close = difflib.get_close_matches(name, known_metrics(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise MetricError(
        f"unknown metric {name!r}{hint} Valid: alloop's {', '.join(OWN_METRICS)} or any "
        "scikit-learn scorer name (sklearn.metrics.get_scorer_names())"
    )


def default_metrics(task: str, has_proba: bool = True) -> tuple[str, ...]:
    """The metrics reported when ``loop.metrics`` is not set."""
    if task == "regression":
        return REGRESSION_METRICS
    return CLASSIFICATION_METRICS if has_proba else ("accuracy", "macro_f1")


def check_metrics(names: Sequence[str] | None, model: Any) -> tuple[str, ...]:
    """The metrics to report for ``model``: ``names`` checked, or the defaults.

    Raises :class:`MetricError` for an unknown name, a classification metric on a regression
    model (or the other way round, for alloop's own names), or a probability metric on a model
    without ``predict_proba`` -- before any round runs.
    """
    task = getattr(model, "task", "classification")
    has_proba = hasattr(model, "predict_proba")
    if names is None:
        return default_metrics(task, has_proba)
    out = []
    for name in names:
        check_metric_name(name)
        if OWN_METRICS.get(name, task) != task:
            raise MetricError(f"metric {name!r} is for {OWN_METRICS[name]}; the model is a {task} model")
        if task == "classification" and needs_proba(name) and not has_proba:
            raise MetricError(
                f"metric {name!r} needs predicted probabilities, but {model!r} has no "
                "predict_proba; choose a label metric (accuracy, balanced_accuracy, f1_macro, "
                "...) or a model with probabilities"
            )
        out.append(name)
    if not out:
        raise MetricError("loop.metrics is empty; name at least one metric, or leave it unset")
    return tuple(dict.fromkeys(out))


class _Fitted:
    """A fitted alloop model seen as a scikit-learn estimator, for scikit-learn's scorers."""

    def __init__(self, model: Any, task: str, classes: np.ndarray | None):
        self.model, self._task = model, task
        if classes is not None:
            self.classes_ = classes
        if hasattr(model, "predict_proba"):
            self.predict_proba = model.predict_proba

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classify = self._task == "classification"
        return Tags(
            estimator_type="classifier" if classify else "regressor",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags() if classify else None,
            regressor_tags=None if classify else RegressorTags(),
        )

    def fit(self, *_: Any) -> _Fitted:  # pragma: no cover - scorers never fit
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X))


def _roc_auc(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float:
    if labels.size == 2:
        return float(skm.roc_auc_score(y == labels[1], proba[:, 1]))
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))


def evaluate(
    model: Any,
    X: Any,
    y: np.ndarray,
    classes: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Test metrics of a fitted model: ``metrics`` (default: accuracy, macro-F1, log-loss; or
    RMSE, MAE, R²).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> model = LogisticGLM().fit(X, y)
    >>> evaluate(model, X, y, metrics=["roc_auc", "balanced_accuracy"])
    {'roc_auc': 1.0, 'balanced_accuracy': 1.0}
    """
    y = np.asarray(y)
    names = check_metrics(metrics, model)
    task = getattr(model, "task", "classification")
    out: dict[str, float] = {}
    if task == "regression":
        pred = np.asarray(model.predict(X), dtype=np.float64)
        own = {
            "rmse": lambda: float(np.sqrt(skm.mean_squared_error(y, pred))),
            "mae": lambda: float(skm.mean_absolute_error(y, pred)),
            "r2": lambda: float(skm.r2_score(y, pred)),
        }
        labels = None
    else:
        labels = np.asarray(classes if classes is not None else model.classes_)
        proba = (np.asarray(model.predict_proba(X), dtype=np.float64)
                 if hasattr(model, "predict_proba") else None)
        pred = labels[proba.argmax(axis=1)] if proba is not None else np.asarray(model.predict(X))
        own = {
            "accuracy": lambda: float(skm.accuracy_score(y, pred)),
            "macro_f1": lambda: float(
                skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
            "log_loss": lambda: float(skm.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels)),
            "roc_auc": lambda: _roc_auc(y, proba, labels),
        }
    fitted = None
    for name in names:
        if name in own:
            out[name] = own[name]()
            continue
        if fitted is None:
            fitted = _Fitted(model, task, labels)
        out[name] = float(skm.get_scorer(name)(fitted, X, y))
    return out


def default_metric(task: str) -> str:
    """The headline metric of a task: accuracy, or RMSE for regression."""
    return "rmse" if task == "regression" else "accuracy"
