"""Where validation data comes from, and the random streams of a round.

Validation data is ``X_val, y_val`` when given; otherwise a fifth of the labeled items, chosen
by a hash of their ids (fold 0), is held out. Every random choice of round ``r`` draws from a
generator keyed by ``(seed, r, stream)``, so a resumed run retraces the uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from alloop.data.pool import Pool, take_rows

#: validation items a hash hold-out needs before s is searched on it (else s is kept)
MIN_HOLDOUT = 10

#: the streams of a round's generator
INITIAL, CONTEXT, SELECT, STOP = 0, 1, 2, 3


def rng(seed: int, round_: int, stream: int) -> np.random.Generator:
    """The generator of one random choice of a round (see the stream constants)."""
    return np.random.default_rng([seed, round_, stream])


def fold(item_id: str) -> int:
    """The item's hold-out fold (0-4) by id hash: fold 0 is held out as validation data."""
    return int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % 5


def validation_split(pool: Pool, X_val: Any, y_val: Any, task: str) -> tuple[Any, Any, np.ndarray]:
    """(X_val, y_val, training mask over the labeled items); (None, None, all) when the
    hold-out would be too small (fewer than ``MIN_HOLDOUT``, or a single class)."""
    labeled = pool.labeled_indices()
    if X_val is not None:
        return X_val, y_val, np.ones(len(labeled), dtype=bool)
    hold = np.array([fold(i) for i in pool.ids[labeled]]) == 0
    X_l, y_l = pool.labeled_data()
    too_few = hold.sum() < MIN_HOLDOUT or (~hold).sum() < 2
    if too_few or (task == "classification" and len(set(y_l[hold].tolist())) < 2):
        return None, None, np.ones(len(labeled), dtype=bool)
    return take_rows(X_l, np.flatnonzero(hold)), y_l[hold], ~hold


def check_validation_need(strategy: Any, initial_ids: Sequence[str]) -> None:
    """Fail now, before anything is stored, if round 1 would have no validation split.

    Without ``X_val`` the split is the id-hash hold-out of the labeled items; after round 0
    they are the initial set, known already, so its hold-out can be counted here.
    """
    held = sum(fold(i) == 0 for i in initial_ids)
    if held < MIN_HOLDOUT or len(initial_ids) - held < 2:
        raise ValueError(
            f"strategy {strategy.name!r} needs a validation split: set "
            "data.validation_size > 0 in the config (X_val=, y_val= in Python), or label a "
            f"larger initial set (loop.initial): the id-hash hold-out of the {len(initial_ids)} "
            f"initial items has {held}, it needs {MIN_HOLDOUT}"
        )
