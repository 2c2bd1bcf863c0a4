"""Scoring pools too large for one process: on a Ray cluster, or streamed from Parquet.

- :class:`RayScoring` — the loop's ``scoring=`` callable: the pool scored in row shards with
  Ray Data, the per-round state (fitted model, tangent vectors) shipped once per round;
- :func:`score_parquet` — score a Parquet pool streamed batch by batch (on Ray, or in this
  process), returning item ids and scores or the top k, never the feature matrix.

Names are imported on first use: ``import alloop.scale`` loads neither Ray nor pyarrow.
"""

import importlib
from typing import Any

_LAZY = {
    "RayScoring": "alloop.scale.ray_scoring",
    "PoolScores": "alloop.scale.parquet_pool",
    "score_parquet": "alloop.scale.parquet_pool",
    "parquet_files": "alloop.scale.parquet_pool",
    "connect": "alloop.scale.cluster",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alloop.scale' has no attribute {name!r}")
