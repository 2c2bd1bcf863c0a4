"""Score a pool stored as Parquet without loading its feature matrix in one process.

The pool is one or more Parquet files with an id column and feature columns. The strategy's
per-round state is prepared once (on this process), then the files are streamed in record
batches — by Ray Data's ``read_parquet`` on a cluster, or by pyarrow in this process — and
each batch is scored with the strategy's ``score_rows``. Only ids and scores come back (or,
with ``top_k``, each batch's best candidates only), so the driver holds 16 bytes per item at
most, never the features.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alloop.scale.cluster import (
    connect,
    features_of,
    quiet,
    score_batch,
    tasks,
    top_candidates,
)

BACKENDS = ("ray", "local")
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PoolScores:
    """Item ids and their scores.

    Without ``top_k``: every item, in the order of the files (sorted by path) and of the rows
    in each. With ``top_k``: the k best, highest score first, ties broken by id.
    """

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def parquet_files(source: PathLike | Iterable[PathLike]) -> list[str]:
    """The Parquet files of ``source`` (a file, a folder searched recursively, or a list),
    sorted by path so every backend reads them in the same order."""
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    files: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += [str(p) for p in sorted(path.rglob("*.parquet"))]
        elif path.exists():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"no Parquet file or folder at {str(path)!r}")
    if not files:
        raise FileNotFoundError(f"no .parquet files under {[str(i) for i in items]!r}")
    return sorted(files)


def _columns(files: list[str], id_column: str, feature_columns: list[str] | None) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(files[0]).names  # the footer only: no rows are read
    if id_column not in names:
        raise ValueError(f"the pool has no id column {id_column!r}; its columns: {names}")
    if feature_columns is None:
        return [c for c in names if c != id_column]
    missing = [c for c in feature_columns if c not in names]
    if missing:
        raise ValueError(f"feature columns {missing} are not in the pool; its columns: {names}")
    return list(feature_columns)


def score_parquet(
    strategy: Any,
    model: Any,
    source: PathLike | Iterable[PathLike],
    *,
    id_column: str = "id",
    feature_columns: list[str] | None = None,
    top_k: int | None = None,
    backend: str = "ray",
    address: str | None = None,
    batch_size: int = 8192,
    num_workers: int | None = None,
    **context: Any,
) -> PoolScores:
    """Score every item of a Parquet pool with a row-wise strategy, streaming the rows.

    Parameters
    ----------
    strategy : Strategy or str
        A strategy with a row-wise split (``strategy.row_wise``): sld, sti, ssi, the
        uncertainty family.
    model
        The fitted model.
    source : path, folder or list of paths
        The pool's Parquet files (see :func:`parquet_files`).
    id_column : str
        The column naming each item.
    feature_columns : list of str, optional
        Numeric feature columns, in the model's order; default: every other column.
    top_k : int, optional
        Return only the k highest-scoring items.
    backend : {"ray", "local"}
        ``ray``: ``ray.data.read_parquet`` + ``map_batches`` on the cluster at ``address`` (or
        the connected / a new local one), the state put in the object store once. ``local``:
        ``pyarrow`` record batches scored in this process, one batch in memory at a time.
    batch_size : int
        Rows per scored batch.
    num_workers : int, optional
        ray: most scoring tasks at once.
    **context
        The strategy's context and options (``X_val``, ``y_val``, ``tangent_method``, ...).

    Returns
    -------
    PoolScores

    Examples
    --------
    >>> best = score_parquet("sld", model, "pool/", top_k=100)  # doctest: +SKIP
    >>> best.ids[:3], best.scores[:3]  # doctest: +SKIP
    """
    import strategies

    strategy = strategies.get(strategy) if isinstance(strategy, str) else strategy
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if top_k is not None and not (isinstance(top_k, int | np.integer) and top_k >= 1):
        raise ValueError(f"top_k must be a positive integer or None; got {top_k!r}")
    if not strategy.row_wise:
        raise ValueError(
            f"strategy {strategy.name!r} has no row-wise split (prepare/score_rows), so a "
            "streamed pool cannot be scored with it: its score of a row depends on the whole "
            "pool. Load the pool in memory and use strategy.score, or pick sld, sti, ssi or an "
            "uncertainty strategy."
        )
    files = parquet_files(source)
    features = _columns(files, id_column, feature_columns)
    state = strategy.prepare_state(model, **context)
    if backend == "local":
        batches = _local_batches(strategy, state, files, id_column, features, batch_size, top_k)
    else:
        batches = _ray_batches(strategy, state, files, id_column, features, batch_size, top_k,
                               address, num_workers)
    return _collect(batches, top_k)


def _local_batches(strategy, state, files, id_column, features, batch_size, top_k) -> Iterator:
    import pyarrow.parquet as pq

    for path in files:
        reader = pq.ParquetFile(path)
        for record in reader.iter_batches(batch_size=batch_size, columns=[id_column, *features]):
            batch = {name: record.column(name).to_numpy(zero_copy_only=False)
                     for name in record.schema.names}
            X = features_of(batch, features)
            scores = strategy.check_scores(strategy.score_rows(state, X), len(X))
            ids = batch[id_column]
            if top_k is not None:
                keep = top_candidates(scores, top_k)
                ids, scores = ids[keep], scores[keep]
            yield ids, scores


def _ray_batches(strategy, state, files, id_column, features, batch_size, top_k, address,
                 num_workers) -> Iterator:
    import ray
    import ray.data

    connect(address)
    state_ref = ray.put(state)
    # only these columns are read: the projection is pushed down to the Parquet reader
    dataset = quiet(ray.data.read_parquet(files).select_columns([id_column, *features]))
    # every item comes back in file order, as with the local backend; the top k are sorted
    # afterwards, so any order will do and no worker waits for an earlier block
    dataset.context.execution_options.preserve_order = top_k is None
    scored = dataset.map_batches(
        score_batch,
        fn_kwargs={"state_ref": state_ref, "score_rows": strategy.score_rows, "key": id_column,
                   "feature_columns": features, "top_k": top_k},
        batch_size=batch_size,
        batch_format="numpy",
        compute=tasks(num_workers),
    )
    for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
        scores = strategy.check_scores(batch["score"], len(batch["score"]))
        yield batch[id_column], scores


def _collect(batches: Iterator, top_k: int | None) -> PoolScores:
    if top_k is None:
        parts = list(batches)
        if not parts:
            raise ValueError("the Parquet pool has no rows")
        return PoolScores(np.concatenate([i for i, _ in parts]),
                          np.concatenate([s for _, s in parts]))
    ids: np.ndarray | None = None
    scores = np.empty(0)
    for batch_ids, batch_scores in batches:
        ids = batch_ids if ids is None else np.concatenate([ids, batch_ids])
        scores = np.concatenate([scores, batch_scores])
        if len(scores) > 4 * top_k:  # bound the candidates held: ties at the k-th stay
            keep = top_candidates(scores, top_k)
            ids, scores = ids[keep], scores[keep]
    if ids is None:
        raise ValueError("the Parquet pool has no rows")
    best = heapq.nsmallest(top_k, range(len(scores)), key=lambda i: (-scores[i], ids[i]))
    return PoolScores(ids[best], scores[best])
