"""The fit stage: a fresh model on the labels so far, at the loop's regularity ``s``.

With a regularity hook (automatic regularity) ``s`` is searched on the validation split each
round, warm-started from the last round's; the final model is fitted on every label at the
chosen ``s``. ``s`` may be a float or a vector (a hierarchical model's (s0, s1)); the stage only
hands it back to the model through ``with_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from alloop.data.pool import take_rows

#: chooses the regularity s and returns a fitted model: ``hook(model, X, y, X_val, y_val,
#: s0=, **fit_kwargs) -> (model, s)`` (e.g. :func:`alloop.experiment.automatic_regularity`).
RegularityHook = Callable[..., Any]


class FitStage:
    """Fits ``template`` round after round, carrying the regularity ``s`` between rounds."""

    def __init__(self, template: Any, classes: np.ndarray | None, task: str,
                 regularity: RegularityHook | None = None) -> None:
        self.template = template
        self.classes = classes
        self.task = task
        self.regularity = regularity
        #: the regularity the next fit starts from (None: the model has none)
        self.s: Any = template.s

    def _kwargs(self) -> dict[str, Any]:
        return {"classes": self.classes} if self.task == "classification" else {}

    def fit(self, X: Any, y: Any, validation: tuple[Any, Any, np.ndarray] | None = None) -> Any:
        """A model fitted on (X, y); ``validation`` = (X_val, y_val, train mask) searches s."""
        kwargs = self._kwargs()
        if self.regularity is not None and validation is not None and validation[0] is not None:
            X_val, y_val, train = validation
            model, s = self.regularity(
                self.template, take_rows(X, np.flatnonzero(train)), y[train], X_val, y_val,
                s0=self.s, **kwargs,
            )
            from alloop.regularity.auto import fit_selected

            final = fit_selected(self.template, model, s, X, y, **kwargs)  # same s (or e^s σ²)
            self.s = final.s if final.s is not None else s
            return final
        template = self.template if self.s is None else self.template.with_s(self.s)
        return template.clone().fit(X, y, **kwargs)


def s_metrics(s: Any) -> dict[str, float]:
    """The round metrics that record ``s``: ``s`` for a float, ``s0``, ``s1``… for a vector."""
    if s is None:
        return {}
    values = np.atleast_1d(np.asarray(s, dtype=float))
    if np.ndim(s) == 0:
        return {"s": float(values[0])}
    return {f"s{i}": float(v) for i, v in enumerate(values)}


def s_from_metrics(row: dict[str, Any], default: Any) -> Any:
    """The ``s`` a finished round recorded (see :func:`s_metrics`), else ``default``."""
    if "s" in row:
        return row["s"]
    parts = [row[f"s{i}"] for i in range(len(row)) if f"s{i}" in row]
    return tuple(parts) if parts else default
