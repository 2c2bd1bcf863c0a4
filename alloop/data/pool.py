"""The pool: features, stable item ids, and which items carry a label."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch


def as_features(X: Any, what: str = "X") -> Any:
    """``X`` as float64 numpy (dense) or canonical scipy CSR (sparse); refuse non-numeric, non-2-D.

    The one check of "numeric 2-D features" (pools, data sets, test and validation sets). NaN
    and inf are left to the caller, whose message names the rows its own way (by position for
    a pool, by item id for a data set): see :func:`nonfinite_rows`.

    Parameters
    ----------
    X : array-like, DataFrame, torch tensor or scipy sparse matrix, shape (n, d)
    what : str
        How messages name ``X`` (e.g. ``"X_test"``, ``"X of 'digits'"``).

    Examples
    --------
    >>> as_features([[1, 2], [3, 4]]).dtype
    dtype('float64')
    >>> as_features([1, 2], "X_test")
    Traceback (most recent call last):
    ...
    ValueError: X_test must be 2-D (n_samples, n_features); got shape (2,)
    """
    if isinstance(X, pd.DataFrame):
        non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if non_numeric:
            raise ValueError(
                f"{what} has non-numeric columns {non_numeric[:5]!r}; vectorise them first "
                "(data.text_column with a vectorizer) or drop them"
            )
        X = X.to_numpy(dtype=np.float64)
    elif isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        X = X.to_dense().numpy() if X.layout != torch.strided else X.numpy()
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        if not X.has_canonical_format:  # copy first: the caller's matrix is left as it was
            X = X.copy()
            X.sum_duplicates()
    else:
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} must be numeric; {exc}") from exc
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_samples, n_features); got shape {X.shape}")
    return X


def nonfinite_rows(X: Any) -> np.ndarray:
    """Sorted positions of the rows of ``X`` (:func:`as_features` output) holding NaN or inf."""
    if sp.issparse(X):
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.unique(rows[~np.isfinite(X.data)])
    return np.flatnonzero(~np.isfinite(X).all(axis=1))


def validate_features(X: Any, name: str = "X") -> Any:
    """Return ``X`` as numpy (dense) or scipy CSR (sparse); reject NaN/inf, non-2-D, non-numeric.

    The error names the first offending rows and columns so the user can find them.
    """
    X = as_features(X, name)
    rows = nonfinite_rows(X)
    if len(rows) == 0:
        return X
    if sp.issparse(X):
        raise ValueError(
            f"{name} contains NaN or inf in rows {rows[:10].tolist()!r}; "
            "impute or drop those rows before building the pool"
        )
    bad = ~np.isfinite(X)
    r, c = np.nonzero(bad)
    raise ValueError(
        f"{name} contains {bad.sum()} NaN or inf values (first at rows {r[:10].tolist()!r}, "
        f"columns {c[:10].tolist()!r}); impute or drop them before building the pool"
    )


def take_rows(X: Any, index: np.ndarray) -> Any:
    """Rows of a numpy array or scipy sparse matrix."""
    return X[np.asarray(index, dtype=np.int64)]


class Pool:
    """Features with stable item ids and the labels known so far.

    Parameters
    ----------
    X : array-like, scipy sparse, torch tensor or DataFrame, shape (n, d)
        Candidate features. NaN/inf are rejected.
    ids : sequence of str or int, optional
        Stable item ids (default ``"0"``, ``"1"``, …). Stored as strings.
    raw : sequence, optional
        What a person is shown for each item (text, image array, row of a table).

    Examples
    --------
    >>> import numpy as np
    >>> pool = Pool(np.eye(3), ids=["a", "b", "c"])
    >>> pool.add_labels(["b"], [1])
    >>> pool.unlabeled_ids().tolist()
    ['a', 'c']
    """

    def __init__(
        self,
        X: Any,
        ids: Sequence[Any] | None = None,
        raw: Sequence[Any] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.X = validate_features(X)
        n = self.X.shape[0]
        if n == 0:
            raise ValueError("the pool is empty: it needs at least one item")
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of ids, not one string")
        self.ids = np.asarray([str(i) for i in (range(n) if ids is None else ids)], dtype=object)
        if len(self.ids) != n:
            raise ValueError(f"X has {n} rows but {len(self.ids)} ids were given")
        if len(set(self.ids.tolist())) != n:
            raise ValueError("item ids must be unique")
        self._position = {item: i for i, item in enumerate(self.ids)}
        if raw is not None and len(raw) != n:
            raise ValueError(f"X has {n} rows but raw has {len(raw)} items")
        if feature_names is not None and len(feature_names) != self.X.shape[1]:
            raise ValueError(
                f"X has {self.X.shape[1]} columns but {len(feature_names)} feature names were given"
            )
        self.raw = raw
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.labeled = np.zeros(n, dtype=bool)
        self.labels = np.empty(n, dtype=object)

    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        return f"Pool(n={len(self)}, labeled={int(self.labeled.sum())})"

    def index_of(self, ids: Iterable[Any]) -> np.ndarray:
        """Positions of the given item ids; unknown ids raise ``KeyError`` naming them."""
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in self._position]
        if missing:
            raise KeyError(f"unknown item ids {missing[:10]!r}")
        return np.asarray([self._position[i] for i in ids], dtype=np.int64)

    def add_labels(self, ids: Iterable[Any], labels: Iterable[Any]) -> None:
        """Mark items labeled (a later label for the same id replaces the earlier one)."""
        ids, labels = list(ids), list(labels)
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
        index = self.index_of(ids)
        self.labels[index] = labels
        self.labeled[index] = True

    def set_labels(self, labels: dict[Any, Any]) -> None:
        """Replace the labeled state with exactly these id → label pairs (items not named are
        unlabeled again: an undo or a relabel to "unsure" removes a label)."""
        self.labeled[:] = False
        self.labels[:] = None
        if labels:
            self.add_labels(labels.keys(), labels.values())

    def labeled_indices(self) -> np.ndarray:
        return np.flatnonzero(self.labeled)

    def unlabeled_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)

    def unlabeled_ids(self) -> np.ndarray:
        return self.ids[~self.labeled]

    def features(self, index: np.ndarray) -> Any:
        return take_rows(self.X, index)

    def labeled_data(self) -> tuple[Any, np.ndarray]:
        """(X, y) of the labeled items, in pool order."""
        index = self.labeled_indices()
        return self.features(index), np.asarray(self.labels[index].tolist())
