"""A data set: features, target, stable ids and what a person sees; its checks and task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from alloop.data.pool import Pool, as_features, nonfinite_rows

TASKS = ("classification", "regression")

#: Integer targets with at most this many distinct values count as class labels (task="auto").
MAX_AUTO_CLASSES = 20

_SHOWN = 10  # how many offending rows or names an error message lists


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, target, stable ids and what a person sees, for one set of items.

    Parameters
    ----------
    X : ndarray of float64 or scipy CSR matrix, shape (n, d)
        Features; NaN and inf are refused.
    y : ndarray, shape (n,)
        Target: class labels (classification) or float64 values (regression).
    ids : ndarray of str, shape (n,), optional
        Stable, unique item ids (default ``"0"``, ``"1"``, …).
    raw : ndarray, shape (n, ...), optional
        What a person is shown for each item: the text of a text data set, the 8×8 image of a
        digit, a dict of feature values for a table.
    feature_names : tuple of str, optional
        One name per column of ``X``.
    task : {"classification", "regression"}
    classes : ndarray, optional
        Sorted class labels (classification only; default: those present in ``y``). A split keeps
        the classes of the whole set, so a part that lacks a class still knows of it.
    name : str
        Where the data came from, for messages and run records.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.eye(3), np.array(["a", "b", "a"]))
    >>> ds.classes.tolist(), ds.ids.tolist()
    (['a', 'b'], ['0', '1', '2'])
    >>> ds.subset([2, 0]).ids.tolist()
    ['2', '0']
    """

    X: Any
    y: np.ndarray
    ids: np.ndarray | None = None
    raw: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None
    task: str = "classification"
    classes: np.ndarray | None = None
    name: str = "dataset"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: fields are normalised once, here
        X = as_features(self.X, f"X of {self.name!r}")  # NaN checked below, naming ids
        n = X.shape[0]
        if n == 0:
            raise ValueError(f"data set {self.name!r} has no rows")
        ids = _as_ids(self.ids, n, self.name)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {self.task!r}")
        y = np.asarray(self.y)
        if y.ndim != 1:
            raise ValueError(
                f"y of {self.name!r} must be 1-D (one target per item); got shape {y.shape}. "
                "Multi-output targets are not supported: pick one column"
            )
        if len(y) != n:
            raise ValueError(f"X of {self.name!r} has {n} rows but y has {len(y)} values")
        _reject_rows(nonfinite_rows(X), ids, f"X of {self.name!r} has NaN or inf")
        classes = None
        if self.task == "regression":
            y = _as_float_target(y, ids, self.name)
            if self.classes is not None:
                raise ValueError("classes are for classification; leave them unset for regression")
        else:
            _reject_rows(np.flatnonzero(pd.isna(y)), ids, f"y of {self.name!r} is missing")
            classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
            if classes.ndim != 1 or len(np.unique(classes)) != len(classes):
                raise ValueError(f"classes must be 1-D and distinct; got {classes!r}")
            classes = np.sort(classes)
            unknown = np.setdiff1d(np.unique(y), classes)
            if len(unknown):
                raise ValueError(
                    f"y of {self.name!r} holds labels {unknown[:_SHOWN].tolist()!r} that are not "
                    f"among classes {classes.tolist()!r}"
                )
        raw = self.raw
        if raw is not None:
            raw = raw if isinstance(raw, np.ndarray) else _object_array(list(raw))
            if len(raw) != n:
                raise ValueError(f"X of {self.name!r} has {n} rows but raw has {len(raw)} items")
        names = self.feature_names
        if names is not None:
            names = tuple(str(c) for c in names)
            if len(names) != X.shape[1]:
                raise ValueError(
                    f"X of {self.name!r} has {X.shape[1]} columns but {len(names)} feature "
                    "names were given"
                )
        for field, value in (("X", X), ("y", y), ("ids", ids), ("raw", raw)):
            set_(self, field, value)
        set_(self, "feature_names", names)
        set_(self, "classes", classes)

    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        kind = "sparse" if sp.issparse(self.X) else "dense"
        extra = f", classes={len(self.classes)}" if self.classes is not None else ""
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, d={self.n_features}, {kind}, "
            f"task={self.task!r}{extra})"
        )

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def subset(self, index: Sequence[int] | np.ndarray) -> Dataset:
        """The items at the given positions, in that order (classes are kept)."""
        index = np.asarray(index, dtype=np.int64)
        return Dataset(
            X=self.X[index],
            y=self.y[index],
            ids=self.ids[index],
            raw=None if self.raw is None else self.raw[index],
            feature_names=self.feature_names,
            task=self.task,
            classes=self.classes,
            name=self.name,
        )

    def to_pool(self) -> Pool:
        """A pool of these items, none of them labeled yet."""
        return Pool(self.X, ids=self.ids, raw=self.raw, feature_names=self.feature_names)


def _as_ids(ids: Any, n: int, name: str) -> np.ndarray:
    if ids is None:
        return np.arange(n).astype(str)
    ids = np.asarray([str(i) for i in ids], dtype=str)
    if len(ids) != n:
        raise ValueError(f"X of {name!r} has {n} rows but {len(ids)} ids were given")
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"item ids of {name!r} must be unique; repeated: {values[counts > 1][:_SHOWN].tolist()!r}"
        )
    return ids


def _reject_rows(rows: np.ndarray, ids: np.ndarray, problem: str, detail: str = "") -> None:
    """Raise naming the first offending rows by id (and position) if there are any."""
    if len(rows) == 0:
        return
    shown = ", ".join(f"{str(ids[r])!r} (row {r})" for r in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    raise ValueError(
        f"{problem} in {len(rows)} rows: {shown}{more}{detail}; "
        "fill in or drop those rows before loading (they are not dropped silently)"
    )


def _as_float_target(y: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"regression needs a numeric target but y of {name!r} holds values such as "
            f"{np.unique(y.astype(str))[:5].tolist()!r}; use task='classification'"
        ) from exc
    _reject_rows(np.flatnonzero(~np.isfinite(y)), ids, f"y of {name!r} is NaN or inf")
    return y


def _object_array(items: list[Any]) -> np.ndarray:
    """A 1-D object array (np.asarray would nest lists and copy text into fixed-width strings)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def infer_task(y: Any) -> str:
    """Guess the task from a target: ``"classification"`` or ``"regression"``.

    Booleans, strings and categories are class labels. Whole numbers (integers, or floats that
    are all whole) are class labels when there are at most :data:`MAX_AUTO_CLASSES` distinct values
    and, on average, at least two items per value; other numbers are regression targets.

    Examples
    --------
    >>> infer_task(["spam", "ham"]), infer_task([0, 1, 1, 0]), infer_task([0.5, 1.7])
    ('classification', 'classification', 'regression')
    """
    y = np.asarray(y)
    if y.dtype.kind not in "iuf":
        return "classification"
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        return "regression"
    n_values = len(np.unique(y))
    if n_values <= MAX_AUTO_CLASSES and 2 * n_values <= len(y):
        return "classification"
    return "regression"


def _resolve_task(y: np.ndarray, task: str, known: str | None) -> str:
    if task == "auto":
        return known if known is not None else infer_task(y)
    if task not in TASKS:
        raise ValueError(f"task must be 'auto' or one of {TASKS}; got {task!r}")
    return task


def _class_labels(y: np.ndarray) -> np.ndarray:
    """Whole floats become int64 (0.0/1.0 → 0/1); anything not numeric or bool becomes str."""
    if y.dtype.kind == "f" and np.all(np.isfinite(y) & (y == np.round(y))):
        return y.astype(np.int64)
    if y.dtype.kind in "biuf":
        return y
    return y.astype(str)


def _series_values(series: pd.Series) -> np.ndarray:
    """A column as plain numpy: bool, int64, float64, or object."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series):
        return series.to_numpy(dtype=np.float64)
    return series.astype(object).to_numpy()
