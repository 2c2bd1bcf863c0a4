"""Batch selection: top-k order, input errors, k-center against brute force, diverse batches."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans

from alloop.engine.select import (
    BATCH_RULES,
    kcenter_greedy,
    nearest_center_sq_distance,
    select_batch,
    top_positions,
)


def brute_force_kcenter(X: np.ndarray, k: int, centers: np.ndarray | None) -> list[int]:
    """Farthest-first with explicit distances to every center, recomputed at each pick."""
    picks: list[int] = []
    for _ in range(k):
        if centers is None or len(centers) == 0:
            d = np.full(len(X), np.inf)
        else:
            d = cdist(X, centers).min(axis=1)
        d[picks] = -1.0
        i = int(np.argmax(d))
        picks.append(i)
        centers = X[[i]] if centers is None or len(centers) == 0 else np.vstack([centers, X[i]])
    return picks


@pytest.fixture
def gaussian_pool():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 8)), rng.standard_normal((20, 8)) * 0.5


@pytest.fixture
def sparse_pool():
    rng = np.random.default_rng(1)
    def draw(rows):
        return sp.random(rows, 50, density=0.08, format="csr", random_state=rng,
                         data_rvs=rng.standard_normal)

    X = draw(400)
    labeled = draw(15)
    return X, labeled


# --------------------------------------------------------------------------------- top-k
@pytest.mark.parametrize("k", [1, 7, 50])
def test_topk_breaks_ties_by_position(k):
    scores = np.random.default_rng(3).integers(0, 4, size=50).astype(float)  # many ties
    want = sorted(range(50), key=lambda i: (-scores[i], i))[:k]
    got = select_batch(scores, k)
    assert got.tolist() == want
    assert got.dtype == np.int64


@pytest.mark.parametrize("seed", range(6))
def test_top_positions_is_the_stable_sort_prefix(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    scores = rng.choice([-np.inf, -1.0, 0.0, -0.0, 0.5, 2.0, np.inf], size=n)
    scores[rng.random(n) < 0.3] = rng.standard_normal()  # one more tied value
    for k in (1, 2, n // 2 + 1, n):
        want = sorted(range(n), key=lambda i: (-scores[i], i))[:k]
        assert top_positions(scores, k).tolist() == want


@pytest.mark.parametrize("rule", ["diverse", "kcenter"])
def test_a_batch_of_the_whole_pool_is_the_score_order(rule, gaussian_pool):
    X, _ = gaussian_pool
    scores = np.round(np.random.default_rng(4).random(300), 1)
    got = select_batch(scores, 300, rule, X_pool=X)
    assert got.tolist() == sorted(range(300), key=lambda i: (-scores[i], i))


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3"])
def test_a_batch_size_that_is_not_a_positive_integer_is_rejected(k):
    with pytest.raises(ValueError, match="batch size must be a positive integer; got"):
        select_batch(np.ones(5), k)


@pytest.mark.parametrize("rule", BATCH_RULES)
def test_a_batch_larger_than_the_pool_names_both_sizes(rule):
    with pytest.raises(ValueError, match="batch size 6 is larger than the 5 unlabeled items"):
        select_batch(np.ones(5), 6, rule, X_pool=np.zeros((5, 2)))


def test_an_unknown_rule_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown batch rule 'random'; expected one of \('topk'"):
        select_batch(np.ones(5), 2, "random")


def test_other_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="the pool is empty"):
        select_batch(np.ones(0), 1)
    with pytest.raises(ValueError, match="scores contain 1 NaN values"):
        select_batch(np.array([1.0, np.nan, 0.0]), 1)
    with pytest.raises(ValueError, match="scores must be 1-D"):
        select_batch(np.ones((5, 2)), 1)
    with pytest.raises(ValueError, match="'kcenter' needs the pool features; pass X_pool="):
        select_batch(np.ones(5), 2, "kcenter")
    with pytest.raises(ValueError, match="X_pool has 4 rows but there are 5 scores"):
        select_batch(np.ones(5), 2, "diverse", X_pool=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="oversample must be a positive integer; got 0"):
        select_batch(np.ones(5), 2, "diverse", X_pool=np.zeros((5, 2)), oversample=0)
    with pytest.raises(ValueError, match="the pool has 3 features but the centers .* have 2"):
        select_batch(np.ones(5), 2, "kcenter", X_pool=np.zeros((5, 3)), X_labeled=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="scores must have shape \\(5,\\)"):
        kcenter_greedy(np.zeros((5, 2)), 2, scores=np.ones(4))


# --------------------------------------------------------------------------------- k-center
def test_nearest_center_distances_match_cdist(gaussian_pool, sparse_pool):
    X, C = gaussian_pool
    want = cdist(X, C, "sqeuclidean").min(axis=1)
    np.testing.assert_allclose(nearest_center_sq_distance(X, C), want, rtol=1e-10, atol=1e-12)
    Xs, Cs = sparse_pool
    want = cdist(Xs.toarray(), Cs.toarray(), "sqeuclidean").min(axis=1)
    for C_in in (Cs, Cs.toarray()):  # sparse pool with sparse or dense centers
        got = nearest_center_sq_distance(Xs, C_in)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_labeled", [True, False])
def test_kcenter_is_farthest_first_at_every_pick(gaussian_pool, with_labeled):
    X, labeled = gaussian_pool
    centers = labeled if with_labeled else None
    k = 12
    got = kcenter_greedy(X, k, centers)
    assert got.tolist() == brute_force_kcenter(X, k, centers)
    covered = labeled if with_labeled else X[got[:1]]
    for i in got[int(not with_labeled):]:  # each pick is the farthest from all centers so far
        d = cdist(X, covered).min(axis=1)
        assert d[i] == pytest.approx(d.max(), rel=1e-9)
        covered = np.vstack([covered, X[i]])


def test_kcenter_dense_sparse_and_torch_inputs_give_the_same_picks(sparse_pool):
    X, labeled = sparse_pool
    Xd, Ld = X.toarray(), labeled.toarray()
    want = brute_force_kcenter(Xd, 15, Ld)
    assert kcenter_greedy(X, 15, labeled).tolist() == want
    assert kcenter_greedy(Xd, 15, Ld).tolist() == want
    assert kcenter_greedy(X.tocoo(), 15, Ld).tolist() == want  # COO, mixed with dense centers
    assert kcenter_greedy(torch.from_numpy(Xd), 15, torch.from_numpy(Ld)).tolist() == want
    assert kcenter_greedy(torch.from_numpy(Xd).to_sparse(), 15, labeled).tolist() == want
    assert kcenter_greedy(X.astype(np.float32), 15, labeled).tolist() == want
    scores = np.zeros(X.shape[0])
    for Xin, Lin in ((X, labeled), (Xd, Ld)):
        got = select_batch(scores, 15, "kcenter", X_pool=Xin, X_labeled=Lin)
        assert got.tolist() == want


def test_kcenter_ties_go_to_the_higher_score_then_the_lower_position():
    X = np.array([[0.0], [2.0], [-2.0], [0.0], [2.0]])  # rows 1 and 2, 1 and 4: equally far
    center = np.array([[0.0]])
    assert kcenter_greedy(X, 1, center).tolist() == [1]  # no scores: lower position
    assert kcenter_greedy(X, 1, center, scores=np.array([0, 1, 3, 0, 2.0])).tolist() == [2]
    assert kcenter_greedy(X, 1, center, scores=np.array([0, 1, 1, 0, 2.0])).tolist() == [4]
    # nothing labeled: every row is infinitely far, the best score starts the batch
    scores = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    got = select_batch(scores, 2, "kcenter", X_pool=X)
    assert got.tolist() == [3, 1]  # then the farthest from row 3, the higher of rows 1 and 4
    assert select_batch(scores, 2, "kcenter", X_pool=X, X_labeled=X[:0]).tolist() == [3, 1]


def test_kcenter_never_picks_a_row_twice_even_among_duplicates():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 3, axis=0)
    got = kcenter_greedy(X, 6)
    assert sorted(got.tolist()) == list(range(6))
    assert {got[0], got[1]} in ({0, 3}, {0, 4}, {0, 5})  # the second pick is the other point


# --------------------------------------------------------------------------------- diverse
def _clustered_candidates():
    """Top 20 candidates: four tight clusters; the four best scores all in cluster 0."""
    rng = np.random.default_rng(5)
    cluster = np.array([0] * 8 + [1] * 4 + [2] * 4 + [3] * 4)
    X_top = 10.0 * np.eye(5)[cluster] + 0.05 * rng.standard_normal((20, 5))
    X_rest = 3.0 * rng.standard_normal((80, 5))
    scores_top = np.linspace(2.0, 1.0, 20)  # cluster 0 holds the eight best
    scores_rest = rng.random(80) * 0.5
    perm = rng.permutation(100)  # scatter the candidates through the pool
    X = np.empty((100, 5))
    scores = np.empty(100)
    X[perm[:20]], X[perm[20:]] = X_top, X_rest
    scores[perm[:20]], scores[perm[20:]] = scores_top, scores_rest
    best_of_each = [perm[np.flatnonzero(cluster == c)[0]] for c in range(4)]
    return X, scores, perm[:20], cluster, best_of_each


FEATURE_KINDS = {
    "dense": lambda X: X,
    "float32": lambda X: X.astype(np.float32),
    "csr": sp.csr_matrix,
    "coo": sp.coo_matrix,
    "torch": torch.from_numpy,
}


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_diverse_takes_the_best_item_of_each_cluster_of_top_candidates(kind):
    X, scores, top, cluster, best_of_each = _clustered_candidates()
    X_in = FEATURE_KINDS[kind](X)
    got = select_batch(
        scores, 4, "diverse", X_pool=X_in, rng=np.random.default_rng(0), oversample=5
    )
    assert got.tolist() == best_of_each  # one per cluster, each its best, in score order
    group_of = dict(zip(top.tolist(), cluster.tolist()))
    assert sorted(group_of[i] for i in got) == [0, 1, 2, 3]
    topk = select_batch(scores, 4, "topk")
    assert {group_of[i] for i in topk} == {0}  # plain top-k would spend the batch on cluster 0


@pytest.mark.parametrize("seed", [0, 11])
def test_diverse_picks_at_most_one_item_per_kmeans_group(seed):
    """On unstructured data: the groups of a k-means run seeded as documented (one draw of rng)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 6))
    scores = rng.random(500)
    k, oversample = 8, 4
    got = select_batch(scores, k, "diverse", X_pool=X, rng=np.random.default_rng(seed),
                       oversample=oversample)
    top = np.argsort(-scores, kind="stable")[: k * oversample]
    assert len(set(got.tolist())) == k and set(got.tolist()) <= set(top.tolist())
    kmeans_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
    groups = KMeans(n_clusters=k, n_init=3, random_state=kmeans_seed).fit_predict(X[top])
    group_of = dict(zip(top.tolist(), groups.tolist()))
    assert len({group_of[i] for i in got}) == k
    for i in got:  # each pick is the best-scored member of its group
        members = [j for j in top if group_of[j] == group_of[i]]
        assert scores[i] == max(scores[members])
    assert np.all(np.diff(scores[got]) <= 0)  # reported in score order


def test_diverse_is_deterministic_for_a_seed(gaussian_pool):
    X, _ = gaussian_pool
    scores = np.random.default_rng(6).random(300)
    a = select_batch(scores, 10, "diverse", X_pool=X, rng=np.random.default_rng(3))
    b = select_batch(scores, 10, "diverse", X_pool=X, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        select_batch(scores, 10, "diverse", X_pool=X), select_batch(scores, 10, "diverse", X_pool=X)
    )


def test_diverse_fills_the_batch_when_candidates_repeat():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 5, axis=0)  # two distinct rows
    scores = np.arange(10, 0, -1, dtype=float)
    got = select_batch(scores, 3, "diverse", X_pool=X, oversample=3)
    assert got.tolist() == [0, 5, 1]  # the head of each of the two groups, then the next best


# --------------------------------------------------------------------------------- large sparse
@pytest.mark.parametrize("rule", ["kcenter", "diverse"])
def test_a_wide_sparse_pool_is_never_densified(rule):
    """1,000 × 100,000 CSR (0.8 GB if dense): peak traced memory stays far below that."""
    rng = np.random.default_rng(8)
    X = sp.random(1000, 100_000, density=2e-4, format="csr", random_state=rng)
    labeled = sp.random(50, 100_000, density=2e-4, format="csr", random_state=rng)
    scores = rng.random(1000)
    tracemalloc.start()
    try:
        got = select_batch(scores, 5, rule, X_pool=X, X_labeled=labeled, rng=rng)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(set(got.tolist())) == 5
    dense_bytes = 1000 * 100_000 * 8
    assert peak < dense_bytes / 20, f"peak {peak / 1e6:.0f} MB"
