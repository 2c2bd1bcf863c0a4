"""Score an in-memory pool on Ray: the loop's ``scoring=`` callable.

Per round, the driver runs the strategy's ``prepare`` (the solves: θ̇, q, SSI's directions),
puts that state — the fitted model included — in Ray's object store ONCE, and scores row
shards of the pool with Ray Data's ``map_batches``; each worker process fetches the state once
per round (:func:`alloop.scale.cluster.round_state`), not once per batch. The scores come back
with their row numbers and are put in the pool's order, so the result is what
``strategy.score(model, X_pool, **context)`` returns.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from alloop.scale.cluster import connect, quiet, score_batch, tasks

FALLBACKS = ("driver", "error")


class RayScoring:
    """``scoring(strategy, model, X_pool, **context) -> scores`` on a Ray cluster.

    Parameters
    ----------
    address : str, optional
        The cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``); default: the Ray
        this process is already connected to, else a new local cluster.
    batch_size : int
        Pool rows per ``map_batches`` batch.
    num_workers : int, optional
        Most scoring tasks at once (a Ray Data task pool of that size); default: as many as the
        cluster has CPUs.
    shard_size : int, optional
        Rows per block of the pool put in the object store; default: about four blocks per
        worker, a multiple of ``batch_size``.
    num_cpus : int, optional
        CPUs of a local cluster started here.
    fallback : {"driver", "error"}
        What a strategy without a row-wise split (coreset, the committees, egl, the labeled
        variants of sld/sti/ssi) or a sparse pool gets: scored in this process with a
        :class:`RuntimeWarning` naming it, or a :class:`ValueError`.

    Examples
    --------
    >>> from alloop.scale import RayScoring
    >>> scoring = RayScoring(num_cpus=2)  # doctest: +SKIP
    >>> scores = scoring(strategies.get("sld"), model, X_pool)  # doctest: +SKIP
    >>> loop = ActiveLoop(pool, model, "sld", oracle, scoring=scoring, ...)  # doctest: +SKIP
    """

    def __init__(
        self,
        address: str | None = None,
        batch_size: int = 8192,
        *,
        num_workers: int | None = None,
        shard_size: int | None = None,
        num_cpus: int | None = None,
        fallback: str = "driver",
    ) -> None:
        for name, value in (("batch_size", batch_size), ("num_workers", num_workers),
                            ("shard_size", shard_size), ("num_cpus", num_cpus)):
            if value is not None and not (isinstance(value, int | np.integer) and value >= 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}; got {fallback!r}")
        self.address, self.batch_size = address, int(batch_size)
        self.num_workers, self.shard_size, self.num_cpus = num_workers, shard_size, num_cpus
        self.fallback = fallback
        self._started = False

    def __repr__(self) -> str:
        return (f"RayScoring(address={self.address!r}, batch_size={self.batch_size}, "
                f"num_workers={self.num_workers})")

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Connect to (or start) the cluster; later calls do nothing."""
        self._started |= connect(self.address, num_cpus=self.num_cpus)

    def close(self) -> None:
        """Shut down the local cluster if this object started it."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayScoring:
        self.connect()
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ scoring
    def __call__(self, strategy: Any, model: Any, X_pool: Any, **context: Any) -> np.ndarray:
        """The scores of every pool row, equal to ``strategy.score(model, X_pool, **context)``."""
        n = X_pool.shape[0]
        if n == 0:
            raise ValueError("the pool is empty: there is nothing left to score")
        reason = _not_shardable(strategy, X_pool)
        state = None
        if reason is None:
            from strategies.base import NotRowWise

            try:
                state = strategy.prepare_state(model, **context)
            except NotRowWise as exc:
                reason = str(exc)
        if reason is not None:
            if self.fallback == "error":
                raise ValueError(f"RayScoring cannot shard strategy {strategy.name!r}: {reason}")
            warnings.warn(
                f"RayScoring: strategy {strategy.name!r} is scored in this process, not on "
                f"Ray: {reason}",
                RuntimeWarning,
                stacklevel=2,
            )
            return strategy.score(model, X_pool, **context)
        return strategy.check_scores(self.score_rows(strategy.score_rows, state, X_pool), n)

    def score_rows(self, score_rows: Any, state: Any, X: Any) -> np.ndarray:
        """``score_rows(state, X)`` computed shard by shard on the cluster, in row order.

        ``state`` is put in the object store once for the whole call.
        """
        import pyarrow as pa
        import ray
        import ray.data
        from ray.data.extensions import ArrowTensorArray

        X = _dense(X)
        n = X.shape[0]
        self.connect()
        state_ref = ray.put(state)
        size = self._shard_rows(n, ray)
        tables = [
            pa.table({
                "row": pa.array(np.arange(start, min(start + size, n))),
                "data": ArrowTensorArray.from_numpy(np.ascontiguousarray(X[start:start + size])),
            })
            for start in range(0, n, size)
        ]
        dataset = quiet(ray.data.from_arrow(tables))
        del tables  # the shards now live in the object store
        scored = dataset.map_batches(
            score_batch,
            fn_kwargs={"state_ref": state_ref, "score_rows": score_rows, "key": "row"},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=tasks(self.num_workers),
        )
        scores = np.empty(n, dtype=np.float64)
        seen = np.zeros(n, dtype=bool)
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            scores[batch["row"]] = batch["score"]
            seen[batch["row"]] = True
        if not seen.all():
            raise RuntimeError(f"Ray returned scores for {int(seen.sum())} of {n} pool rows")
        return scores

    def _shard_rows(self, n: int, ray: Any) -> int:
        if self.shard_size is not None:
            return self.shard_size
        workers = self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # about four shards per worker, whole batches each: the batches then start where the
        # in-process scorer's do, so the products have the same shapes
        batches = math.ceil(n / (4 * workers) / self.batch_size)
        return max(1, batches) * self.batch_size


def _not_shardable(strategy: Any, X_pool: Any) -> str | None:
    """Why the pool cannot be scored in row shards with ``strategy``, or None."""
    if not getattr(strategy, "row_wise", False):
        return ("it has no row-wise split (prepare/score_rows), which sharding needs: see "
                "docs/scaling.md for the strategies that have one")
    import scipy.sparse

    if scipy.sparse.issparse(X_pool) or getattr(X_pool, "is_sparse", False):
        return "the pool is sparse; RayScoring ships dense row shards"
    return None


def _dense(X: Any) -> np.ndarray:
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    return np.asarray(X)
