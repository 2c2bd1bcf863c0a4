"""alloop's strategies against scikit-activeml 1.0.1 (the peer) on the same fitted model and pool.

For each strategy both libraries have, the peer gets exactly what alloop uses -- the same
fitted classifier (an alloop GLM behind a scikit-learn wrapper), the same committee, the same
features -- and the test shows the same batch, or, where the peer breaks ties or samples with
its own random state, the same utilities (Spearman ≥ 0.999, and equal up to the peer's eps).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_wine

import strategies
from alloop.engine.select import select_batch
from alloop.models import SoftmaxGLM
from strategies.badge import gradient_embedding
from strategies.bald import mutual_information
from strategies.batchbald import batchbald_greedy
from strategies.committee import vote_entropy
from strategies.probcover import probcover_select
from strategies.typiclust import typiclust_select

skal = pytest.importorskip("skactiveml", minversion="1.0.1")
from skactiveml.classifier import SklearnClassifier  # noqa: E402
from skactiveml.pool import (  # noqa: E402
    Badge,
    CoreSet,
    ProbCover,
    QueryByCommittee,
    TypiClust,
    UncertaintySampling,
)
from skactiveml.pool._bald import batch_bald  # noqa: E402
from skactiveml.pool._query_by_committee import vote_entropy as peer_vote_entropy  # noqa: E402

CLASSES = [0, 1, 2]


class AlloopGLM(ClassifierMixin, BaseEstimator):
    """A scikit-learn face for an alloop SoftmaxGLM, so the peer scores the very same model.

    ``drop_last`` ignores the last feature column (the peer's BADGE embeds its input: giving it
    [x, 1] makes its embedding the alloop GLM's, whose last layer has an intercept).
    """

    def __init__(self, s: float = 0.0, drop_last: bool = False):
        self.s, self.drop_last = s, drop_last

    def _x(self, X):
        return X[:, :-1] if self.drop_last else X

    def fit(self, X, y):
        self.model_ = SoftmaxGLM(s=self.s).fit(self._x(X), y, classes=CLASSES)
        self.classes_ = np.asarray(CLASSES)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(self._x(X))

    def predict(self, X):
        return self.model_.predict(self._x(X))


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(0)
    labeled = np.zeros(len(y), bool)
    for c in CLASSES:  # 4 per class
        labeled[rng.choice(np.flatnonzero(y == c), 4, replace=False)] = True
    y_missing = np.where(labeled, y, np.nan)
    return X, y, labeled, y_missing


def _fitted(X, y_missing, **kw):
    return SklearnClassifier(AlloopGLM(**kw), classes=CLASSES).fit(X, y_missing)


@pytest.mark.parametrize(
    ("ours", "peers"),
    [("margin", "margin_sampling"), ("entropy", "entropy"), ("least-confident", "least_confident")],
)
def test_uncertainty_sampling_picks_the_same_batch(wine, ours, peers):
    X, _, labeled, y_missing = wine
    clf = _fitted(X, y_missing)
    cand = np.flatnonzero(~labeled)
    peer_idx, peer_util = UncertaintySampling(method=peers, random_state=0).query(
        X, y_missing, clf, fit_clf=False, batch_size=8, return_utilities=True
    )
    scores = strategies.get(ours).score(clf.estimator_.model_, X[cand])
    assert cand[select_batch(scores, 8)].tolist() == list(peer_idx)
    assert spearmanr(scores, peer_util[0, cand]).statistic >= 0.999


def test_coreset_picks_the_same_batch(wine):
    X, _, labeled, y_missing = wine
    cand = np.flatnonzero(~labeled)
    peer_idx = CoreSet(random_state=0).query(X, y_missing, batch_size=8)
    scores = strategies.get("coreset").score(None, X[cand], X_labeled=X[labeled])
    ours = select_batch(scores, 8, "kcenter", X_pool=X[cand], X_labeled=X[labeled])
    assert cand[ours].tolist() == list(peer_idx)
    # as a loop round calls it: the core-set scores handed over as the distances
    hint = strategies.get("coreset").labeled_distance(scores, X[labeled])
    ours = select_batch(scores, 8, "kcenter", X_pool=X[cand], X_labeled=X[labeled],
                        center_distance=hint)
    assert cand[ours].tolist() == list(peer_idx)


def test_badge_embeddings_first_pick_and_sampling_laws_agree(wine):
    X, _, labeled, y_missing = wine
    X1 = np.hstack([X, np.ones((len(X), 1))])  # the peer embeds its input: give it [x, 1]
    clf = _fitted(X1, y_missing, drop_last=True)
    cand = np.flatnonzero(~labeled)
    peer_idx, util = Badge(random_state=0).query(
        X1, y_missing, clf, fit_clf=False, batch_size=5, return_utilities=True
    )
    E = gradient_embedding(clf.estimator_.model_, X[cand])
    d2 = (E**2).sum(1)
    assert cand[np.argmax(d2)] == peer_idx[0]  # both start at the largest gradient norm
    np.testing.assert_allclose(util[0, cand], d2 / d2.sum(), rtol=1e-9)
    # Later picks are drawn ∝ D², the squared distance to the nearest chosen embedding. The
    # peer keeps the origin as a centre too (its D² starts from the squared norms), Ash et al.
    # (2020) and alloop do not: the peer's law is alloop's with the origin added to the centres.
    chosen = []
    for step, idx in enumerate(peer_idx[:-1]):
        chosen.append(int(np.flatnonzero(cand == idx)[0]))
        D2 = ((E[:, None, :] - E[None, chosen, :]) ** 2).sum(-1).min(1)
        theirs = np.nan_to_num(util[step + 1, cand])
        with_origin = np.minimum(D2, d2)
        np.testing.assert_allclose(theirs, with_origin / with_origin.sum(), atol=1e-12)
        assert spearmanr(theirs, D2 / D2.sum()).statistic < 0.999  # the difference is real


def test_typiclust_picks_the_same_batch(wine):
    X, _, labeled, y_missing = wine
    seed = int(np.random.default_rng(5).integers(2**31))  # the k-means seed alloop draws
    peer_idx = TypiClust(random_state=seed, cluster_algo_dict={"n_init": 1}, k=5).query(
        X, y_missing, batch_size=6
    )
    ours = typiclust_select(X, labeled, 6, np.random.default_rng(5), k_neighbors=5)
    assert sorted(ours.tolist()) == sorted(int(i) for i in peer_idx)


def test_probcover_picks_the_same_batch(wine):
    X, _, labeled, y_missing = wine
    delta = 3.0
    peer_idx, util = ProbCover(deltas=[delta], random_state=0).query(
        X, y_missing, batch_size=6, return_utilities=True
    )
    ours = probcover_select(X, labeled, 6, delta)
    cand = np.flatnonzero(~labeled)
    # the peer breaks ties at random, alloop by position: equal picks up to the first tie,
    # where alloop's pick is one of the peer's maximisers
    tie = next((b for b in range(6) if np.sum(util[b] == np.nanmax(util[b])) > 1), 6)
    assert ours[:tie].tolist() == [int(i) for i in peer_idx[:tie]]
    if tie < 6:
        assert util[tie, ours[tie]] == np.nanmax(util[tie])
    ball = ((X[:, None, :] - X[None]) ** 2).sum(-1) <= delta**2
    uncovered = ~ball[labeled].any(0)
    np.testing.assert_array_equal(util[0, cand], (ball[cand] & uncovered).sum(1))


def _committee_probas(X, y, labeled, members=6):
    from strategies.committee import aligned_proba, bootstrap_committee

    model = SoftmaxGLM(s=0.0)
    committee = bootstrap_committee(model, X[labeled], y[labeled], members, np.random.default_rng(1))
    return committee, np.stack([aligned_proba(m, X, np.asarray(CLASSES)) for m in committee])


def test_bald_and_batchbald_agree_with_the_peer_on_the_same_committee(wine):
    X, y, labeled, _ = wine
    _, probas = _committee_probas(X, y, labeled)
    cand = np.flatnonzero(~labeled)
    P = probas[:, cand]
    theirs = batch_bald(P, batch_size=1)[0]
    ours = mutual_information(P)
    assert spearmanr(ours, theirs).statistic >= 0.999
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # the peer clips p at eps = 1e-7
    # the peer samples n_MC_samples label configurations (default: one per member, a coarse
    # estimate); with 1000 of them it is exact here (3 classes, 9 configurations)
    util = batch_bald(P, batch_size=3, n_MC_samples=1000, random_state=0)
    peer_order = [int(np.nanargmax(u)) for u in util]
    order, mi = batchbald_greedy(P, 3)
    assert order.tolist() == peer_order
    np.testing.assert_allclose(mi, [np.nanmax(u) for u in util], atol=1e-5)


def test_qbc_vote_entropy_agrees_with_the_peer_on_the_same_committee(wine):
    X, y, labeled, y_missing = wine
    committee, _ = _committee_probas(X, y, labeled)
    cand = np.flatnonzero(~labeled)
    votes = np.stack([m.predict(X[cand]) for m in committee])  # (M, n)
    ours = vote_entropy(votes, np.asarray(CLASSES))
    np.testing.assert_allclose(ours, peer_vote_entropy(votes.T, CLASSES), rtol=1e-12)
    # and through the peer's strategy class, given the same fitted members
    wrapped = [SklearnClassifier(_Fixed(m), classes=CLASSES).fit(X, y_missing) for m in committee]
    idx, util = QueryByCommittee(method="vote_entropy", random_state=0).query(
        X, y_missing, wrapped, fit_ensemble=False, batch_size=1, return_utilities=True
    )
    np.testing.assert_allclose(util[0, cand], ours, rtol=1e-12)


class _Fixed(ClassifierMixin, BaseEstimator):
    """An already fitted alloop member behind scikit-learn's API (fit keeps it as it is)."""

    def __init__(self, member=None):
        self.member = member

    def fit(self, X, y):
        self.classes_ = np.asarray(CLASSES)
        return self

    def predict_proba(self, X):
        return self.member.predict_proba(X)

    def predict(self, X):
        return self.member.predict(X)


def test_information_density_is_modals():
    from modAL.density import information_density as modal_density

    from strategies.density import information_density

    X = np.random.default_rng(0).normal(size=(40, 3))
    np.testing.assert_allclose(information_density(X), modal_density(X, "euclidean"), rtol=1e-12)
