"""The lazy k-center greedy picks what the plain greedy picks, ties and tie-breaks included.

The reference recomputes nothing lazily: the full n × n squared-distance matrix (scipy's
``cdist``, which sums the squared differences), a naive loop that takes, at every pick, the
farthest row, then the higher score, then the lower position. Integer-valued data make every
distance exact in both, so equal distances really are equal and the tie-break is tested, not
rounding.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist

import strategies
from alloop.engine.kcenter import kcenter_greedy, nearest_center_sq_distance
from alloop.engine.select import select_batch


def plain_greedy(X: np.ndarray, k: int, centers: np.ndarray | None,
                 scores: np.ndarray | None = None) -> list[int]:
    n = len(X)
    D = cdist(X, X, "sqeuclidean")
    d = np.full(n, np.inf) if centers is None or len(centers) == 0 else \
        cdist(X, centers, "sqeuclidean").min(axis=1)
    picks: list[int] = []
    for _ in range(k):
        masked = d.copy()
        masked[picks] = -np.inf
        ties = [i for i in range(n) if masked[i] == masked.max()]
        i = min(ties, key=lambda i: (0.0 if scores is None else -scores[i], i))
        picks.append(i)
        d = np.minimum(d, D[i])
    return picks


def _case(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(20, 160)), int(rng.integers(1, 6))
    if kind == "gaussian":
        X = rng.standard_normal((n, d)) * rng.uniform(0.1, 10)
    elif kind == "grid":  # integer points, few values: many exactly equal distances
        X = rng.integers(0, 3, size=(n, d)).astype(float)
    else:  # duplicated integer rows
        X = np.repeat(rng.integers(-2, 3, size=(n // 4 + 1, d)), 4, axis=0)[:n].astype(float)
        X = X[rng.permutation(n)]
    m = int(rng.choice([0, 1, 3, 12]))
    centers = X[rng.choice(n, m, replace=False)] + (
        0.0 if kind != "gaussian" else rng.standard_normal((m, d)) * 0.1)
    scores = None if seed % 3 == 0 else rng.integers(0, 3, size=n).astype(float)
    k = int(rng.integers(1, n + 1)) if seed % 2 else int(rng.integers(1, min(n, 12) + 1))
    return X, centers, scores, k


@pytest.mark.parametrize("kind", ["gaussian", "grid", "duplicates"])
@pytest.mark.parametrize("seed", range(12))
def test_lazy_greedy_equals_the_plain_greedy(kind, seed):
    X, centers, scores, k = _case(seed, kind)
    want = plain_greedy(X, k, centers, scores)
    assert kcenter_greedy(X, k, centers, scores=scores).tolist() == want
    assert kcenter_greedy(sp.csr_matrix(X), k, sp.csr_matrix(centers), scores=scores).tolist() \
        == want
    if len(centers):  # the distances handed over (as the core-set scores) change nothing
        dist = np.sqrt(cdist(X, centers, "sqeuclidean").min(axis=1))
        got = kcenter_greedy(X, k, centers, scores=scores, center_distance=dist)
        assert got.tolist() == want


@pytest.mark.parametrize("seed", range(4))
def test_sparse_pool_with_ties_equals_the_plain_greedy(seed):
    rng = np.random.default_rng(seed)
    X = sp.random(300, 40, density=0.05, format="csr", random_state=rng,
                  data_rvs=lambda size: rng.integers(1, 3, size=size).astype(float))
    labeled = X[:10]
    scores = rng.integers(0, 2, size=300).astype(float)
    want = plain_greedy(X.toarray(), 40, labeled.toarray(), scores)
    assert kcenter_greedy(X, 40, labeled, scores=scores).tolist() == want
    assert select_batch(scores, 40, "kcenter", X_pool=X, X_labeled=labeled).tolist() == want


def test_the_coreset_scores_as_center_distance_give_the_same_batch():
    rng = np.random.default_rng(7)
    X = rng.integers(0, 4, size=(500, 3)).astype(float)  # many ties at sqrt(2), sqrt(5), ...
    labeled = X[:25]
    pool = X[25:]
    coreset = strategies.get("coreset")
    scores = coreset.score(None, pool, X_labeled=labeled)
    hint = coreset.labeled_distance(scores, labeled)
    assert hint is not None
    want = plain_greedy(pool, 30, labeled, scores)
    assert select_batch(scores, 30, "kcenter", X_pool=pool, X_labeled=labeled,
                        center_distance=hint).tolist() == want
    assert select_batch(scores, 30, "kcenter", X_pool=pool, X_labeled=labeled).tolist() == want


def test_a_too_small_center_distance_is_refused():
    X = np.array([[0.0], [1.0], [5.0]])
    with pytest.raises(ValueError, match="center_distance is smaller than the distance"):
        kcenter_greedy(X, 1, np.array([[0.0]]), center_distance=np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="3 finite distances"):
        kcenter_greedy(X, 1, np.array([[0.0]]), center_distance=np.array([0.0, np.nan, 5.0]))


def test_center_distance_is_ignored_without_centers():
    X = np.array([[0.0], [1.0], [5.0]])
    assert kcenter_greedy(X, 2, None, center_distance=np.zeros(3)).tolist() == [0, 2]


def test_memory_stays_linear_in_the_pool():
    """No n × m (or n × n) matrix: the peak is a few pool-length vectors."""
    rng = np.random.default_rng(0)
    n, m = 200_000, 200
    X = rng.standard_normal((n, 8))
    centers = rng.standard_normal((m, 8))
    dist = np.sqrt(nearest_center_sq_distance(X, centers))
    for hint in (None, dist):
        tracemalloc.start()
        try:
            kcenter_greedy(X, 10, centers, center_distance=hint)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * n * m / 10, f"peak {peak / 1e6:.0f} MB"


# ------------------------------------------------------------- distances carried in a loop
def test_carried_distances_equal_fresh_ones_as_labels_come_and_go(monkeypatch):
    import alloop.loop.select as select_stage
    from alloop.data.pool import Pool
    from alloop.loop.select import CenterDistances

    centers_used = []

    def spy(X, C):
        centers_used.append(C.shape[0])
        return nearest_center_sq_distance(X, C)

    monkeypatch.setattr(select_stage, "nearest_center_sq_distance", spy)

    rng = np.random.default_rng(3)
    pool = Pool(rng.standard_normal((400, 5)))
    carried = CenterDistances()
    assert carried.get(pool, pool.unlabeled_indices()) is None  # nothing labeled
    for step in range(6):
        pool.add_labels(rng.choice(pool.unlabeled_ids(), 7, replace=False), ["y"] * 7)
        if step == 3:  # a label taken back: measured again from scratch
            pool.set_labels({i: "y" for i in pool.ids[pool.labeled][2:]})
        cand = pool.unlabeled_indices()
        if step == 4:  # some candidates held back, as open items are
            cand = cand[::2]
        fresh = np.sqrt(nearest_center_sq_distance(pool.features(cand),
                                                   pool.features(pool.labeled_indices())))
        centers_used.clear()
        np.testing.assert_allclose(carried.get(pool, cand), fresh, rtol=1e-12, atol=1e-12)
        m = int(pool.labeled.sum())
        if step in (1, 2, 4):  # carried: only the 7 new rows are measured
            assert centers_used == [7]
        elif step == 3:  # a label removed: everything again
            assert centers_used == [m]
        elif step == 5:  # the candidates held back last round have nothing carried
            assert centers_used == [7, m]


@pytest.mark.filterwarnings("ignore:the initial labeled set has no item")
@pytest.mark.parametrize("strategy", ["random", "margin"])
def test_a_loop_carrying_distances_picks_what_a_fresh_computation_picks(strategy):
    from sklearn.datasets import load_digits

    from alloop import ActiveLoop, LoopSettings, Pool
    from alloop.models import SoftmaxGLM
    from oracles import SimulatedOracle

    class Fresh:  # no carried distances: k-center computes them from scratch every round
        def get(self, pool, candidates, X_candidates=None):
            return None

    X, y = load_digits(return_X_y=True)
    asked = []
    for carry in (True, False):
        pool = Pool(X[:600])
        settings = LoopSettings(initial=20, batch_size=8, rounds=4, progress=False)
        loop = ActiveLoop(pool, SoftmaxGLM(), strategy, SimulatedOracle(dict(zip(pool.ids, y))),
                          settings, classes=list(range(10)), batch_rule="kcenter")
        if not carry:
            loop.center_distances = Fresh()
        loop.run()
        asked.append([loop.store.requests(r) for r in range(1, 5)])
    assert asked[0] == asked[1]
    assert all(len(r) == 8 for r in asked[0])


@pytest.mark.filterwarnings("ignore:the initial labeled set has no item")
def test_a_resumed_run_starts_without_carried_distances_and_picks_alike(tmp_path):
    from sklearn.datasets import load_digits

    from alloop import ActiveLoop, LoopSettings, Pool
    from alloop.models import SoftmaxGLM
    from alloop.store import LabelStore
    from oracles import SimulatedOracle

    X, y = load_digits(return_X_y=True)

    def loop(rounds, store=None):
        pool = Pool(X[:500])
        return ActiveLoop(pool, SoftmaxGLM(), "margin", SimulatedOracle(dict(zip(pool.ids, y))),
                          LoopSettings(initial=20, batch_size=8, rounds=rounds, progress=False),
                          classes=list(range(10)), batch_rule="kcenter", store=store)

    full = loop(4)
    full.run()
    store = LabelStore(tmp_path / "s.sqlite")
    loop(2, store).run()
    resumed = loop(4, store)  # a new loop: nothing carried, round 3 measures from scratch
    resumed.run(resume=True)
    assert [store.requests(r) for r in range(5)] == [full.store.requests(r) for r in range(5)]


@pytest.mark.parametrize("kind", ["gaussian", "grid", "duplicates"])
@pytest.mark.parametrize("seed", range(4))
def test_many_centers_bounded_by_a_subset_first_equal_the_plain_greedy(kind, seed):
    """Over 16 centers the cold call bounds the distances by the first 16 (and refines only when
    the walk would reach too many rows): the picks are still the plain greedy's."""
    rng = np.random.default_rng(100 + seed)
    n = 1500
    X = (rng.standard_normal((n, 6)) if kind == "gaussian"
         else rng.integers(0, 3, size=(n, 4)).astype(float) if kind == "grid"
         else np.repeat(rng.integers(-2, 3, size=(n // 5, 4)), 5, axis=0).astype(float))
    centers = X[rng.choice(len(X), 60, replace=False)]
    scores = None if seed % 2 else rng.integers(0, 3, size=len(X)).astype(float)
    want = plain_greedy(X, 12, centers, scores)
    assert kcenter_greedy(X, 12, centers, scores=scores).tolist() == want
    assert kcenter_greedy(sp.csr_matrix(X), 12, centers, scores=scores).tolist() == want
