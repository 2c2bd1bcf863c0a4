"""A DataFrame as a :class:`~alloop.data.dataset.Dataset`: target, ids, text and numeric columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from alloop.data.dataset import (
    _SHOWN,
    Dataset,
    _as_ids,
    _class_labels,
    _object_array,
    _reject_rows,
    _resolve_task,
    _series_values,
)
from alloop.data.text import _vectorise


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
