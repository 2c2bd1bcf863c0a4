"""Connecting to Ray once per process, and the worker side of sharded scoring.

Ray is imported inside the functions: importing :mod:`alloop.scale` loads no Ray.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray unless it already is; True when this call did it.

    Parameters
    ----------
    address : str, optional
        A running cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``). Without it a
        local cluster is started on this machine.
    num_cpus : int, optional
        CPUs of a local cluster (default: all of this machine's); ignored with ``address``.

    Notes
    -----
    Workers of a remote cluster must be able to import ``alloop`` and ``strategies`` (install
    the project in the cluster's image, or pass a ``runtime_env`` to :func:`ray.init` first:
    a process already connected is left as it is).
    """
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is not None:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=num_cpus, **options)
    return True


def quiet(dataset: Any) -> Any:
    """``dataset`` with Ray Data's progress bars and start-of-execution logs turned off."""
    context = dataset.context
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    return dataset


def tasks(num_workers: int | None) -> Any:
    """``map_batches``' compute strategy: at most ``num_workers`` tasks at once (None: any)."""
    if num_workers is None:
        return None
    import ray.data

    return ray.data.TaskPoolStrategy(size=num_workers)


#: the state of the current round in this worker process: ObjectRef hex → state.
_STATES: dict[str, Any] = {}


def round_state(ref: Any) -> Any:
    """The prepared state behind ``ref``, fetched and unpickled once per worker and round.

    A worker keeps one round's state: a new round's ref replaces the previous one.
    """
    key = ref.hex()
    if key not in _STATES:
        import ray

        _STATES.clear()
        _STATES[key] = ray.get(ref)
    return _STATES[key]


def features_of(batch: dict[str, np.ndarray], columns: list[str] | None) -> np.ndarray:
    """The feature matrix of a batch: its ``data`` tensor column, or ``columns`` stacked.

    Always a writable float64 array (Ray hands out read-only views of its shared memory, which
    torch refuses to wrap without a warning).
    """
    if columns is None:
        X = np.asarray(batch["data"], dtype=np.float64)
        return X if X.flags.writeable else X.copy()
    return np.column_stack([np.asarray(batch[c], dtype=np.float64) for c in columns])


def score_batch(
    batch: dict[str, np.ndarray],
    *,
    state_ref: Any,
    score_rows: Any,
    key: str,
    feature_columns: list[str] | None = None,
    top_k: int | None = None,
) -> dict[str, np.ndarray]:
    """``map_batches`` function: ``{key: batch[key], "score": score_rows(state, X)}``.

    ``key`` is the column that says which row a score belongs to (a row number or an item
    id). With ``top_k`` only the batch's ``top_k`` highest scores come back.
    """
    scores = np.asarray(score_rows(round_state(state_ref), features_of(batch, feature_columns)),
                        dtype=np.float64).reshape(-1)
    keys = np.asarray(batch[key])
    if top_k is not None:
        keep = top_candidates(scores, top_k)
        keys, scores = keys[keep], scores[keep]
    return {key: keys, "score": scores}


def top_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Mask of the scores that may be among the ``k`` highest: every score ≥ the k-th largest.

    Ties at the k-th score are all kept, so a final tie-break (by id) sees every contender.

    Examples
    --------
    >>> top_candidates(np.array([1.0, 3.0, 2.0, 3.0]), 1).tolist()
    [False, True, False, True]
    """
    if k >= len(scores):
        return np.ones(len(scores), dtype=bool)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    return scores >= kth
