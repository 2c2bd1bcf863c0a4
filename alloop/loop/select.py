"""The select stage: which items a round asks about.

Round 0 takes the initial set (random, chosen from the features, or given ids). Later rounds
first re-offer the items an earlier round asked and nobody answered (``unanswered: reoffer``),
then fill the batch from the unlabeled pool with the strategy's scores and the batch rule
(:func:`alloop.engine.select.select_batch`). Items skipped, marked unsure or ignored too often
are not asked again.

With the k-center rule, :class:`CenterDistances` carries the candidates' distances to the
labeled set from one round to the next, so a round measures them to the newly labeled rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alloop.data.pool import Pool, take_rows
from alloop.engine.kcenter import nearest_center_sq_distance
from alloop.engine.select import select_batch
from alloop.loop.settings import InitialSet, LoopSettings
from alloop.loop.validation import INITIAL, SELECT, rng

#: an unanswered item is offered again at most this many times, then released
MAX_REOFFERS = 2


def initial_ids(pool: Pool, settings: LoopSettings, n_classes: int | None) -> list[str]:
    """The ids round 0 asks about, in pool order."""
    initial = settings.initial
    if isinstance(initial, InitialSet) and initial.strategy != "random":
        from alloop.cold_start import initial_positions

        order = initial_positions(pool.X, int(initial.size), initial.strategy,
                                  rng(settings.seed, 0, INITIAL), n_classes)
        return pool.ids[np.sort(order)].tolist()
    if isinstance(initial, int | np.integer | InitialSet):
        order = rng(settings.seed, 0, INITIAL).permutation(len(pool))[: settings.initial_size]
        return pool.ids[np.sort(order)].tolist()
    return [str(i) for i in initial]


def _times_asked(store: Any, round_: int) -> dict[str, int]:
    times: dict[str, int] = {}
    for r in range(round_):
        for item, _ in store.requests(r):
            times[item] = times.get(item, 0) + 1
    return times


def open_items(store: Any, round_: int, batch_size: int, unanswered: str) -> list[str]:
    """Items asked before this round that nobody has answered yet (as of its start).

    At most a batch of them, each re-offered at most ``MAX_REOFFERS`` times, so an oracle
    that never answers some items cannot crowd new ones out for good.
    """
    if unanswered != "reoffer" or round_ == 0:
        return []
    answered = {a.item_id for a in store.answers() if a.round < round_}
    times = _times_asked(store, round_)
    items = [i for i in store.requested_items(round_)
             if i not in answered and times.get(i, 0) <= MAX_REOFFERS]
    return items[:batch_size]


def declined_items(store: Any, round_: int) -> set[str]:
    """Items not to ask again: skipped or "unsure" and never labeled, or asked
    ``1 + MAX_REOFFERS`` times without any answer."""
    log = [a for a in store.answers() if a.round < round_]
    labeled = {a.item_id for a in log if a.kind == "label"}
    answered = {a.item_id for a in log}
    times = _times_asked(store, round_)
    ignored = {i for i, n in times.items() if n > MAX_REOFFERS and i not in answered}
    return ({a.item_id for a in log if a.kind != "label"} - labeled) | ignored


def candidates(pool: Pool, store: Any, round_: int, settings: LoopSettings,
               open_: Sequence[str], batch_size: int) -> tuple[np.ndarray, int]:
    """(pool positions that may be asked, how many new items to pick this round)."""
    unlabeled = pool.unlabeled_indices()
    excluded = set(open_) | declined_items(store, round_)
    if excluded:
        unlabeled = np.setdiff1d(unlabeled, pool.index_of(sorted(excluded)), assume_unique=True)
    k = min(batch_size - len(open_), len(unlabeled))
    if settings.budget is not None:
        k = min(k, settings.budget - int(pool.labeled.sum()) - len(open_))
    return unlabeled, k


def pick(scores: np.ndarray, k: int, batch_rule: Any, X_pool: Any, X_labeled: Any,
         seed: int, round_: int, center_distance: np.ndarray | None = None) -> np.ndarray:
    """Positions (into the scored candidates) of the ``k`` items the batch rule chooses.

    ``center_distance``: the candidates' distances to ``X_labeled`` when the round has them
    (the core-set's scores, :meth:`strategies.base.Strategy.labeled_distance`, or the carried
    :class:`CenterDistances`); the k-center rule then skips its own pass over the pool, with
    the same picks.
    """
    return select_batch(scores, k, batch_rule, X_pool=X_pool, X_labeled=X_labeled,
                        rng=rng(seed, round_, SELECT), center_distance=center_distance)


class CenterDistances:
    """The candidates' squared distances to the labeled set, carried from round to round.

    A run's loop holds one; the k-center rule starts from its distances (``center_distance``).
    A round labels a batch, so the distance of every candidate is updated with the newly
    labeled rows only (n × k × d work instead of n × m × d). It is kept by pool position (the
    run's pool, whose positions are its stable item ids) with the labeled set it was computed
    for; a label removed (an undo, a relabel to "unsure") or a candidate without a carried value
    is measured again against the whole labeled set, and a new process (a resumed run) starts
    empty. The k-center picks do not depend on any of it (the distances only order its search,
    :func:`alloop.engine.kcenter.kcenter_greedy`), so a carried and a fresh run pick alike.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.data.pool import Pool
    >>> pool = Pool(np.array([[0.0], [1.0], [3.0], [7.0]]))
    >>> pool.add_labels(["0"], ["a"])
    >>> carried = CenterDistances()
    >>> carried.get(pool, pool.unlabeled_indices()).tolist()
    [1.0, 3.0, 7.0]
    >>> pool.add_labels(["3"], ["b"])  # the next round: distances to row 3 only
    >>> carried.get(pool, pool.unlabeled_indices()).tolist()
    [1.0, 3.0]
    """

    def __init__(self) -> None:
        self._labeled: np.ndarray | None = None  # the labeled mask the distances are for
        self._sq: np.ndarray | None = None  # pool-length; NaN where nothing is carried

    def get(self, pool: Pool, candidates: np.ndarray,
            X_candidates: Any = None) -> np.ndarray | None:
        """Distances (not squared) of ``pool``'s ``candidates`` to its labeled rows; None when
        nothing is labeled. ``X_candidates``: their features, when the caller has them."""
        labeled = pool.labeled.copy()
        if not labeled.any():
            return None
        if X_candidates is None:
            X_candidates = pool.features(candidates)

        def rows(index: np.ndarray) -> Any:
            return X_candidates if index.size == len(candidates) else take_rows(X_candidates, index)

        sq = np.full(len(candidates), np.nan)
        old = self._labeled
        if old is not None and old.shape == labeled.shape and not np.any(old & ~labeled):
            sq = self._sq[candidates]
            new = np.flatnonzero(labeled & ~old)
            carried = np.flatnonzero(~np.isnan(sq))
            if new.size and carried.size:
                to_new = nearest_center_sq_distance(rows(carried), pool.features(new))
                sq[carried] = np.minimum(sq[carried], to_new)
        missing = np.flatnonzero(np.isnan(sq))
        if missing.size:
            sq[missing] = nearest_center_sq_distance(rows(missing),
                                                     pool.features(np.flatnonzero(labeled)))
        self._labeled, self._sq = labeled, np.full(len(pool), np.nan)
        self._sq[candidates] = sq
        return np.sqrt(sq)
