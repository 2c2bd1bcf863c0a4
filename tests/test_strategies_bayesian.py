"""BALD, BatchBALD and EPIG against enumeration of the mutual informations they estimate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import strategies
from alloop.loop import LoopSettings
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.models.mlp import MLP
from strategies.bald import mutual_information, posterior_probas
from strategies.batchbald import batchbald_greedy
from strategies.committee import aligned_proba, bootstrap_committee, class_set
from strategies.epig import expected_predictive_information_gain


def _samples(T: int, n: int, C: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(C, 0.7), size=(T, n))


def _mi_enumerated(joint: dict[tuple, float]) -> float:
    """I(A; B) from an enumerated joint law {(a, b): p}."""
    pa: dict = {}
    pb: dict = {}
    for (a, b), p in joint.items():
        pa[a] = pa.get(a, 0.0) + p
        pb[b] = pb.get(b, 0.0) + p
    return sum(p * np.log(p / (pa[a] * pb[b])) for (a, b), p in joint.items() if p > 0)


def _mi_labels_theta(probas: np.ndarray, items: tuple[int, ...]) -> float:
    """I(y_items; θ) with θ uniform over the T samples, by enumerating every label tuple."""
    T, _, C = probas.shape
    joint = {}
    for t in range(T):
        for ys in itertools.product(range(C), repeat=len(items)):
            joint[(ys, t)] = np.prod([probas[t, i, y] for i, y in zip(items, ys, strict=True)]) / T
    return _mi_enumerated(joint)


def test_bald_mutual_information_matches_enumeration():
    probas = _samples(3, 5, 3, seed=1)
    expected = [_mi_labels_theta(probas, (i,)) for i in range(5)]
    np.testing.assert_allclose(mutual_information(probas), expected, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :6]
    rng = np.random.default_rng(0)
    lab = rng.choice(len(y), 30, replace=False)
    pool = np.setdiff1d(np.arange(len(y)), lab)[:80]
    return X[lab], y[lab], X[pool]


def test_bald_strategy_on_a_bootstrap_committee_is_the_enumerated_mi(cancer):
    X_l, y_l, X_p = cancer
    model = LogisticGLM(s=0.0).fit(X_l, y_l)
    scores = strategies.get("bald").score(
        model, X_p, X_labeled=X_l, y_labeled=y_l, rng=np.random.default_rng(7), n_samples=4
    )
    members = bootstrap_committee(model, X_l, y_l, 4, np.random.default_rng(7))
    probas = np.stack([aligned_proba(m, X_p, class_set(model, y_l)) for m in members])
    expected = [_mi_labels_theta(probas[:, i : i + 1], (0,)) for i in range(X_p.shape[0])]
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-12)
    assert scores.std() > 0


def test_bald_uses_mc_dropout_passes_of_an_mlp(cancer):
    X_l, y_l, X_p = cancer
    model = MLP(hidden=(8,), dropout=0.3, optimizer="adam", epochs=20, lr=1e-2).fit(X_l, y_l)
    plain = MLP(hidden=(8,), dropout=0.0, optimizer="adam", epochs=20, lr=1e-2).fit(X_l, y_l)
    # dropout only acts in the MC passes: the fit and the predictions are the plain network's
    np.testing.assert_array_equal(model.theta_.numpy(), plain.theta_.numpy())
    np.testing.assert_array_equal(model.predict_proba(X_p), plain.predict_proba(X_p))
    passes = model.mc_proba(X_p, n_samples=6, seed=3)
    assert passes.shape == (6, X_p.shape[0], 2)
    assert np.abs(passes[0] - passes[1]).max() > 1e-3  # masks differ between passes
    np.testing.assert_array_equal(passes, model.mc_proba(X_p, n_samples=6, seed=3))
    rng_seed = int(np.random.default_rng(5).integers(2**31))
    expected = mutual_information(model.mc_proba(X_p, n_samples=6, seed=rng_seed))
    scores = strategies.get("bald").score(model, X_p, rng=np.random.default_rng(5), n_samples=6)
    np.testing.assert_allclose(scores, expected)
    with pytest.raises(ValueError, match="no dropout layers"):
        plain.mc_proba(X_p)


def test_batchbald_joint_mi_for_batch_two_matches_enumeration():
    probas = _samples(4, 6, 3, seed=2)
    order, mi = batchbald_greedy(probas, 2)
    singles = [_mi_labels_theta(probas, (i,)) for i in range(6)]
    first = int(np.argmax(singles))
    pairs = {j: _mi_labels_theta(probas, (first, j)) for j in range(6) if j != first}
    second = max(pairs, key=pairs.get)
    assert order.tolist() == [first, second]
    np.testing.assert_allclose(mi, [singles[first], pairs[second]], rtol=1e-10)


def test_batchbald_sampled_configurations_estimate_the_exact_joint_mi():
    probas = _samples(5, 8, 3, seed=4)
    exact_order, exact_mi = batchbald_greedy(probas, 3)
    triple = _mi_labels_theta(probas, tuple(exact_order.tolist()))
    np.testing.assert_allclose(exact_mi[-1], triple, rtol=1e-10)
    # max_configs=3: the configurations of 2 chosen items (9) are sampled, 20000 of them
    order, mi = batchbald_greedy(probas, 3, max_configs=3, n_configs=20000,
                                 rng=np.random.default_rng(0))
    assert order[:2].tolist() == exact_order[:2].tolist()
    assert abs(mi[-1] - _mi_labels_theta(probas, tuple(order.tolist()))) < 0.02


def test_epig_matches_enumeration_and_is_at_most_bald():
    probas = _samples(4, 5, 3, seed=6)
    targets = _samples(4, 3, 3, seed=7)
    T = probas.shape[0]
    expected = []
    for i in range(5):
        gains = []
        for j in range(3):
            joint = {(c, d): sum(probas[t, i, c] * targets[t, j, d] for t in range(T)) / T
                     for c in range(3) for d in range(3)}
            gains.append(_mi_enumerated(joint))
        expected.append(np.mean(gains))
    epig = expected_predictive_information_gain(probas, targets, chunk=2)
    np.testing.assert_allclose(epig, expected, rtol=1e-10)
    assert np.all(epig <= mutual_information(probas) + 1e-12)


@pytest.mark.parametrize("name", ["bald", "batchbald", "epig"])
def test_bayesian_strategies_run_in_the_loop(name):
    from sklearn.datasets import load_iris

    from alloop import ActiveLoop, Pool
    from oracles import SimulatedOracle

    X, y = load_iris(return_X_y=True)
    pool = Pool(X)
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(s=0.0),
        name,
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=12, batch_size=4, rounds=2, progress=False),
        X_test=X,
        y_test=y,
        classes=[0, 1, 2],
        strategy_params={"n_samples": 4},
    )
    result = loop.run()
    assert result.curve["labels"].tolist() == [12, 16, 20]


def test_posterior_probas_reject_a_committee_without_labels():
    model = SoftmaxGLM().fit(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="labeled data"):
        posterior_probas(model, np.eye(3))
