"""BADGE, TypiClust, ProbCover and density weighting against direct implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.datasets import load_iris

import strategies
from alloop.loop import LoopSettings
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP
from alloop.models.tensors import DTYPE
from strategies.badge import gradient_embedding, kmeanspp_order
from strategies.density import information_density
from strategies.probcover import probcover_select, purity_delta
from strategies.typiclust import typiclust_select


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return X[::3], y[::3], X[1::3]


def _predicted(model, X):
    f = model.decision(X)
    return (f[:, 0] > 0).to(DTYPE) if model.likelihood == "bernoulli" else f.argmax(1)


@pytest.mark.parametrize("make", [lambda: SoftmaxGLM(s=0.0), lambda: LogisticGLM(s=0.0)])
def test_badge_embedding_of_a_glm_is_the_autograd_gradient(iris, make):
    X_l, y_l, X_p = iris
    if isinstance(make(), LogisticGLM):
        y_l = (y_l == 2).astype(int)
    model = make().fit(X_l, y_l)
    X = torch.as_tensor(X_p, dtype=DTYPE)
    y_hat = _predicted(model, X)
    expected = torch.stack([
        torch.func.grad(lambda t, i=i: model.loss(t, X[i : i + 1], y_hat[i : i + 1]).sum())(model.theta_)
        for i in range(X.shape[0])
    ])
    np.testing.assert_allclose(gradient_embedding(model, X_p), expected.numpy(), atol=1e-12)


def test_badge_embedding_of_an_mlp_is_the_last_layer_autograd_gradient(iris):
    X_l, y_l, X_p = iris
    model = MLP(hidden=(5, 4), optimizer="adam", epochs=5).fit(X_l, y_l)
    X = torch.as_tensor(X_p, dtype=DTYPE)
    y_hat = _predicted(model, X)
    last = len(model.module_) - 1

    def loss(weight, bias, i):
        params = {**model.params(model.theta_), f"{last}.weight": weight, f"{last}.bias": bias}
        f = torch.func.functional_call(model.module_, params, (X[i : i + 1],))
        return torch.nn.functional.cross_entropy(f, y_hat[i : i + 1].long(), reduction="sum")

    p = model.params(model.theta_)
    rows = []
    for i in range(X.shape[0]):
        gW, gb = torch.func.grad(loss, argnums=(0, 1))(p[f"{last}.weight"], p[f"{last}.bias"], i)
        rows.append(torch.cat([gW.T, gb[None]], 0).reshape(-1))  # (h, 1) ⊗ r, row by row
    np.testing.assert_allclose(gradient_embedding(model, X_p), torch.stack(rows).numpy(), atol=1e-12)


def test_kmeanspp_order_starts_at_the_largest_norm_and_samples_by_squared_distance():
    E = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    second = [kmeanspp_order(E, 2, np.random.default_rng(s))[1] for s in range(3000)]
    assert all(kmeanspp_order(E, 2, np.random.default_rng(s))[0] == 1 for s in range(5))
    d2 = np.array([16.0, 0.0, 17.0, 20.0])  # squared distances to row 1
    share = np.bincount(second, minlength=4) / len(second)
    np.testing.assert_allclose(share, d2 / d2.sum(), atol=0.03)


def _blobs():
    rng = np.random.default_rng(0)
    sizes, centers = (30, 20, 10), np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = np.vstack([c + rng.normal(scale=0.7, size=(s, 2)) for c, s in zip(centers, sizes, strict=True)])
    blob = np.repeat(np.arange(3), sizes)
    return X, blob


def test_typiclust_picks_the_most_typical_point_of_each_largest_uncovered_cluster():
    X, blob = _blobs()
    labeled = np.zeros(len(X), bool)
    labeled[3] = True  # covers the blob of 30
    picks = typiclust_select(X, labeled, 2, np.random.default_rng(0), k_neighbors=5)
    expected = []
    for b in (1, 2):  # the blobs of 20, then 10
        members = np.flatnonzero(blob == b)
        D = cdist(X[members], X[members])
        mean_knn = np.sort(D, axis=1)[:, 1:6].mean(axis=1)
        expected.append(int(members[np.argmin(mean_knn)]))
    assert picks.tolist() == expected


def test_probcover_greedy_cover_matches_a_direct_implementation():
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(60, 2))
    labeled = np.zeros(60, bool)
    labeled[[0, 7, 19]] = True
    delta, k = 0.22, 6
    ball = cdist(X, X) <= delta
    covered = ball[labeled].any(axis=0)
    free, expected = ~labeled, []
    for _ in range(k):
        gain = [(ball[i] & ~covered).sum() if free[i] else -1 for i in range(60)]
        i = int(np.argmax(gain))
        expected.append(i)
        free[i] = False
        covered |= ball[i]
    assert probcover_select(X, labeled, k, delta).tolist() == expected


def test_probcover_purity_delta_is_the_largest_pure_radius():
    X, blob = _blobs()
    delta = purity_delta(X, 3, np.random.default_rng(0), alpha=0.95)
    D = cdist(X, X)
    grid = np.round(np.arange(0.2, 2.2, 0.2), 10)
    pure = [1 - ((D <= d) & (blob[:, None] != blob[None, :])).any(axis=1).mean() >= 0.95 for d in grid]
    expected = grid[0] if not pure[0] else grid[np.argmin(pure) - 1] if not all(pure) else grid[-1]
    assert delta == pytest.approx(expected)


def test_information_density_matches_the_double_sum():
    X = np.random.default_rng(2).normal(size=(15, 3))
    expected = [np.mean([1 / (1 + np.linalg.norm(x - u)) for u in X]) for x in X]
    np.testing.assert_allclose(information_density(X), expected, rtol=1e-12)
    model = SoftmaxGLM().fit(X, np.arange(15) % 3)
    p = model.predict_proba(X)
    np.testing.assert_allclose(
        strategies.get("density-weighted").score(model, X, beta=2.0),
        -(p * np.log(p)).sum(1) * np.asarray(expected) ** 2, rtol=1e-10,
    )


@pytest.mark.parametrize("name", ["badge", "typiclust", "probcover", "density-weighted"])
def test_diversity_strategies_run_in_the_loop_and_pick_whole_batches(name):
    from alloop import ActiveLoop, Pool
    from oracles import SimulatedOracle

    X, y = load_iris(return_X_y=True)
    pool = Pool(X)
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        name,
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=12, batch_size=5, rounds=2, progress=False),
        X_test=X,
        y_test=y,
        classes=[0, 1, 2],
    )
    assert loop.run().curve["labels"].tolist() == [12, 17, 22]
