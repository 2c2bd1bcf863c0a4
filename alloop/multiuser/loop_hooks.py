"""What the ordinary loop calls for multi-user: the (s_0, s_1) search and the per-user report.

* :class:`HierarchicalRegularity` — the loop's ``regularity`` hook: fit at last round's
  (s_0, s_1), then choose (s_0, s_1) on the validation split by hypergradient
  (:func:`alloop.multiuser.select_hyperparameters`), warm-started from last round's choice.
* :class:`UserReport` — the loop's ``round_report``: per-user labels and test metric as the
  table ``users`` (``users.csv`` in MLflow) and their aggregates as round metrics
  (``<metric>_mean_users``, ``<metric>_median_users``, ``users_with_labels``,
  ``labels_min/median/max``, ``labels_per_user``, ``validation_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alloop.multiuser.pool import PairPool, split_pairs
from alloop.multiuser.regularity import (
    HyperparameterSelection,
    select_hyperparameters,
    validation_hypergradient,
)

__all__ = ["HierarchicalRegularity", "UserReport"]


@dataclass
class HierarchicalRegularity:
    """``ActiveLoop(..., regularity=HierarchicalRegularity())``: (s_0, s_1) each round.

    Parameters
    ----------
    bounds : ((lo0, hi0), (lo1, hi1))
        The search box.

    Attributes
    ----------
    last : HyperparameterSelection or None
        The latest search (its ``iterations`` are reported as ``hyper_evaluations``).
    """

    bounds: Any = ((-10.0, 10.0), (-10.0, 10.0))
    last: HyperparameterSelection | None = field(default=None, repr=False, compare=False)

    def __call__(
        self, template: Any, X: Any, y: Any, X_val: Any, y_val: Any, s0: Any = None,
        classes: Any = None,
    ) -> tuple[Any, np.ndarray]:
        start = template.s if s0 is None else np.asarray(s0, dtype=np.float64)
        model = template.with_s(start).clone().fit(X, y, classes=classes)
        features, users = split_pairs(X_val)
        fitted, self.last = select_hyperparameters(
            model, features, np.asarray(y_val), users, s_init=tuple(start.tolist()),
            bounds=self.bounds,
        )
        return fitted, fitted.s


@dataclass
class UserReport:
    """``ActiveLoop(..., round_report=UserReport(X_test, y_test, X_val, y_val))``.

    Parameters
    ----------
    X_test, y_test
        Test pair rows ``[user, x...]`` and labels: each user's metric (RMSE for regression,
        accuracy for classification; NaN for a user without test rows).
    X_val, y_val : optional
        The validation split: its loss V is reported as ``validation_loss``.
    regularity : HierarchicalRegularity, optional
        Its last search's fit count is reported as ``hyper_evaluations``.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> from alloop.multiuser.pool import PairPool, pair_rows
    >>> X = np.arange(8.0).reshape(4, 2); u = np.array([0, 0, 1, 1])
    >>> pool = PairPool(X, u, ["a", "b", "a", "b"], ["ann", "bob"])
    >>> pool.add_labels(["ann/a", "bob/a"], [1.0, 2.0])
    >>> model = HierarchicalGLM(n_users=2).fit(*pool.labeled_data())
    >>> metrics, tables = UserReport(pool.X, [1.0, 1.0, 2.0, 2.0])(model, pool)
    >>> tables["users"].columns.tolist(), metrics["users_with_labels"]
    (['user', 'labels', 'rmse', 'n_test'], 2.0)
    """

    X_test: Any
    y_test: Any
    X_val: Any = None
    y_val: Any = None
    regularity: HierarchicalRegularity | None = None

    def table(self, model: Any, pool: PairPool) -> pd.DataFrame:
        """One row per user: labels so far, the test metric, the number of test rows."""
        U = pool.n_users
        counts = np.bincount(pool.users[pool.labeled], minlength=U)
        frame = pd.DataFrame({"user": list(pool.user_names), "labels": counts})
        if self.X_test is None:
            return frame
        features, users = split_pairs(self.X_test)
        y = np.asarray(self.y_test)
        prediction = model.predict_users(features, users)
        n = np.bincount(users, minlength=U)
        if model.task == "regression":
            err = np.bincount(users, (prediction - y) ** 2, minlength=U)
        else:
            err = np.bincount(users, (prediction == y).astype(float), minlength=U)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = err / n
        frame[self.metric(model)] = np.sqrt(value) if model.task == "regression" else value
        frame["n_test"] = n
        return frame

    @staticmethod
    def metric(model: Any) -> str:
        return "rmse" if model.task == "regression" else "accuracy"

    def __call__(
        self, model: Any, pool: PairPool
    ) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        users = self.table(model, pool)
        counts = users["labels"].to_numpy()
        out = {
            "users_with_labels": float((counts > 0).sum()),
            "labels_min": float(counts.min()),
            "labels_median": float(np.median(counts)),
            "labels_max": float(counts.max()),
            "labels_per_user": float(counts.mean()),
        }
        name = self.metric(model)
        if name in users:
            values = users[name].to_numpy(dtype=float)
            out[f"{name}_mean_users"] = float(np.nanmean(values))
            out[f"{name}_median_users"] = float(np.nanmedian(values))
        if self.X_val is not None:
            features, val_users = split_pairs(self.X_val)
            out["validation_loss"] = validation_hypergradient(
                model, features, np.asarray(self.y_val), val_users
            )[0]
        if self.regularity is not None and self.regularity.last is not None:
            out["hyper_evaluations"] = float(self.regularity.last.iterations)
        return out, {"users": users}
