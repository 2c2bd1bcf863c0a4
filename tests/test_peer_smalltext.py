"""alloop's strategies and stopping rules against small-text 1.4.1 (the peer).

Strategies both have, on the same fitted model, pool and features (what small-text calls the
embeddings): ``margin`` = BreakingTies, ``entropy`` = PredictionEntropy, ``least-confident`` =
LeastConfidence (the same batch, as a set: the peer returns ``argpartition`` order, and the
same utilities), ``coreset`` = GreedyCoreset (euclidean, unnormalised: the same batch in the
same order), ``bald`` = BALD (the same committee: the same batch, the peer's MI is ours in bits
up to its eps = 1e-8), and alloop's ``kmeans`` cold start = EmbeddingKMeans (the same set on
unit-length features, where the peer's cosine nearest-to-centre is our euclidean one).

``badge`` differs by definition and is shown to: small-text 1.4.1's BADGE embedding is
−p_c·h(x) in every class block. Its line meant to put the predicted class's block at
(1 − p_ŷ)·h, ``scale[proba_argmax] = -1 * proba[proba_argmax]``, indexes rows by class ids and
changes nothing; alloop uses Ash et al.'s gradient (p_c − [c = ŷ])·h. Its k-means++ seeding
(scikit-learn's greedy variant, an unseeded RandomState) cannot be given our generator, so only
the embeddings are compared. small-text 1.4.1 has no ProbCover, TypiClust or committee vote
entropy; its ExpectedGradientLength needs its own PyTorch text classifier, and LightweightCoreset,
ContrastiveActiveLearning, DiscriminativeActiveLearning, SEALS and AnchorSubsampling have no
alloop counterpart.

Stopping rules, fed the same sequence of predictions (models fitted on nested labeled sets of
breast cancer, predictions on a fixed stopping set): ``kappa-average`` = KappaAverage and
``classification-change`` = ClassificationChange stop in the same round with the same
statistic; ``overall-uncertainty`` = OverallUncertainty has the same statistic and stops in the
same round, except that the peer stops when it is *below* the threshold, alloop when it is *at
most* the threshold. ``delta-f`` differs by definition: the peer's ΔF (binary only) is
1 − F1 of the positive class between successive predictions and stops when each of the last
``window`` values is *below* the threshold; alloop's is 1 − macro F1 over the classes (so it
applies to any number of classes) and stops when each is *at most* the threshold. The test
shows each statistic against scikit-learn's F1 and that alloop's window decision, given the
peer's statistic, stops where the peer stops.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

import strategies
from alloop.cold_start import kmeans_initial
from alloop.engine.select import select_batch
from alloop.models import SoftmaxGLM
from alloop.stopping import LoopState, StopInputs, make_rule
from strategies.badge import gradient_embedding
from strategies.bald import mutual_information

pytest.importorskip("small_text", minversion="1.4.1")
from small_text.query_strategies import (  # noqa: E402
    BALD,
    BreakingTies,
    EmbeddingKMeans,
    GreedyCoreset,
    LeastConfidence,
    PredictionEntropy,
)
from small_text.stopping_criteria import (  # noqa: E402
    ClassificationChange,
    DeltaFScore,
    KappaAverage,
    OverallUncertainty,
)

CLASSES = [0, 1, 2]


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(0)
    labeled = np.zeros(len(y), bool)
    for c in CLASSES:  # 4 per class
        labeled[rng.choice(np.flatnonzero(y == c), 4, replace=False)] = True
    model = SoftmaxGLM(s=1.0).fit(X[labeled], y[labeled], classes=CLASSES)
    return X, y, labeled, model


class _Clf:
    """The peer's classifier interface over an alloop model: ``predict_proba(dataset)``, and
    with ``dropout_sampling`` the committee's laws, shape (n, T, C)."""

    def __init__(self, model=None, committee=None):
        self.model, self.committee = model, committee

    def predict_proba(self, X, dropout_sampling=None):
        if dropout_sampling is None:
            return self.model.predict_proba(X)
        assert dropout_sampling == self.committee.shape[0]
        return self.committee.transpose(1, 0, 2)


@pytest.mark.parametrize(
    ("ours", "peer"),
    [("margin", BreakingTies), ("entropy", PredictionEntropy), ("least-confident", LeastConfidence)],
)
def test_uncertainty_sampling_picks_the_same_batch(wine, ours, peer):
    X, y, labeled, model = wine
    unl, lab = np.flatnonzero(~labeled), np.flatnonzero(labeled)
    query = peer()
    picked = query.query(_Clf(model), X, unl, lab, y[lab], n=8)
    scores = strategies.get(ours).score(model, X[unl])
    assert sorted(unl[select_batch(scores, 8)].tolist()) == sorted(picked.tolist())
    # the peer's confidence: higher means "ask later" for margin and least confidence
    theirs = query.scores_[unl] * (1 if peer is PredictionEntropy else -1)
    assert spearmanr(scores, theirs).statistic >= 0.999
    top = np.sort(scores)[::-1]
    assert top[7] > top[8]  # no tie at the batch's edge: the same set is not luck


def test_coreset_picks_the_same_batch_in_the_same_order(wine):
    X, y, labeled, _ = wine
    unl, lab = np.flatnonzero(~labeled), np.flatnonzero(labeled)
    with pytest.warns(UserWarning, match="Default distance metric"):
        query = GreedyCoreset(distance_metric="euclidean", normalize=False)
    # the peer's embeddings are aligned with its subset: the unlabeled rows, then the labeled
    picked = query.query(None, X, unl, lab, y[lab], n=8, embeddings=X[np.concatenate([unl, lab])])
    scores = strategies.get("coreset").score(None, X[unl], X_labeled=X[lab])
    ours = select_batch(scores, 8, "kcenter", X_pool=X[unl], X_labeled=X[lab])
    assert unl[ours].tolist() == picked.tolist()
    # as a loop round calls it: the core-set scores handed over as the distances
    hint = strategies.get("coreset").labeled_distance(scores, X[lab])
    ours = select_batch(scores, 8, "kcenter", X_pool=X[unl], X_labeled=X[lab], center_distance=hint)
    assert unl[ours].tolist() == picked.tolist()


def test_bald_picks_the_same_batch_on_the_same_committee(wine):
    from strategies.committee import aligned_proba, bootstrap_committee

    X, y, labeled, _ = wine
    unl, lab = np.flatnonzero(~labeled), np.flatnonzero(labeled)
    committee = bootstrap_committee(SoftmaxGLM(s=1.0), X[lab], y[lab], 8, np.random.default_rng(1))
    P = np.stack([aligned_proba(m, X, np.asarray(CLASSES)) for m in committee])  # (T, n, C)
    picked = BALD(dropout_samples=len(committee)).query(_Clf(committee=P), X, unl, lab, y[lab], n=6)
    ours = mutual_information(P[:, unl])
    assert sorted(unl[select_batch(ours, 6)].tolist()) == sorted(picked.tolist())
    from small_text.query_strategies.bayesian import _bald

    bits = _bald(P[:, unl].transpose(1, 0, 2))
    assert spearmanr(ours, bits).statistic >= 0.999
    np.testing.assert_allclose(ours / np.log(2), bits, atol=1e-6)  # nats vs bits, the peer's eps


def test_kmeans_cold_start_is_embedding_kmeans_on_unit_length_features(wine):
    X, y, labeled, _ = wine
    Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
    unl, lab = np.flatnonzero(~labeled), np.flatnonzero(labeled)
    seed = int(np.random.default_rng(4).integers(2**31))  # the k-means seed kmeans_initial draws
    # the peer's KMeans has no random_state: it draws from numpy's global one, seeded here
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002
        picked = EmbeddingKMeans(normalize=True).query(
            None, X, unl, lab, y[lab], n=6, embeddings=Xu[np.concatenate([unl, lab])]
        )
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    ours = kmeans_initial(Xu[unl], 6, np.random.default_rng(4))
    assert sorted(unl[ours].tolist()) == sorted(picked.tolist())


def test_badge_embeddings_differ_from_the_peer_only_in_the_predicted_class_block(wine):
    from small_text.integrations.pytorch.query_strategies import BADGE

    X, _, labeled, model = wine
    unl = np.flatnonzero(~labeled)
    h = np.hstack([X[unl], np.ones((len(unl), 1))])  # the GLM's last-layer input: [x, 1]
    p = model.predict_proba(X[unl])
    theirs = BADGE(num_classes=3).get_badge_embeddings(h, p)  # blocks by class: (n, C·(d+1))
    ours = gradient_embedding(model, X[unl])  # (n, (d+1)·C), h index major
    ours_by_class = ours.reshape(len(unl), h.shape[1], 3).transpose(0, 2, 1).reshape(len(unl), -1)
    onehot = np.eye(3)[p.argmax(1)]
    # ours = (p_c − [c = ŷ]) h; theirs = −p_c h: ours = −theirs − [c = ŷ] h
    expected = -theirs - (onehot[:, :, None] * h[:, None, :]).reshape(len(unl), -1)
    np.testing.assert_allclose(ours_by_class, expected, atol=1e-12)
    assert np.abs(ours_by_class + theirs).max() > 0.5  # the difference is real


# ---------------------------------------------------------------- stopping rules
class _Given:
    """A model whose predictions on the stopping set are given."""

    def __init__(self, proba):
        self.proba = proba

    def predict(self, X):
        return self.proba.argmax(1)

    def predict_proba(self, X):
        return self.proba


@pytest.fixture(scope="module")
def prediction_sequence():
    """Probabilities on a fixed stopping set after each of 14 rounds of nested labeled sets."""
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    order = np.random.default_rng(3).permutation(len(y))
    stop_set, train = order[:200], order[200:]
    sizes = [10 + 8 * r for r in range(14)]
    probas = []
    for n in sizes:
        clf = LogisticRegression(C=0.05, max_iter=2000).fit(X[train[:n]], y[train[:n]])
        probas.append(clf.predict_proba(X[stop_set]))
    return X[stop_set], probas


def _alloop_stop_round(rule, X_stop, probas):
    """The first round after which alloop's rule fires (None: never), through the loop's path:
    the rule's statistic of each round's refit, logged in the curve, then ``rule(state)``."""
    curve = []
    for r, proba in enumerate(probas):
        previous = _Given(probas[r - 1]) if r else None
        value = rule.statistic(StopInputs(_Given(proba), previous, X_stop, {}))
        curve.append({"round": r} if value is None else {"round": r, rule.metric: value})
        if rule(LoopState(r + 1, 0, len(X_stop), curve)):
            return r, curve
    return None, curve


def _peer_stop_round(criterion, probas):
    for r, proba in enumerate(probas):
        if criterion.stop(predictions=proba.argmax(1), proba=proba,
                          indices_stopping=np.arange(len(proba))):
            return r
    return None


@pytest.mark.parametrize(
    ("ours", "peer"),
    [
        (make_rule("kappa-average", threshold=0.97, window=3), KappaAverage(2, window_size=3, kappa=0.97)),
        (make_rule("classification-change"), ClassificationChange(2)),  # threshold 0: no change
        (make_rule("overall-uncertainty", threshold=0.45), OverallUncertainty(2, threshold=0.45)),
    ],
    ids=["kappa-average", "classification-change", "overall-uncertainty"],
)
def test_stopping_rules_stop_in_the_same_round(prediction_sequence, ours, peer):
    X_stop, probas = prediction_sequence
    ours_round, curve = _alloop_stop_round(ours, X_stop, probas)
    assert ours_round is not None and 2 < ours_round < len(probas) - 1  # fires, not at once
    assert _peer_stop_round(peer, probas) == ours_round
    if isinstance(peer, KappaAverage):  # the same statistic: the peer keeps the last window
        ours_kappa = [row[ours.metric] for row in curve if ours.metric in row]
        np.testing.assert_allclose(peer.kappa_history, ours_kappa[-3:], rtol=1e-12)


def test_delta_f_differs_in_its_statistic_and_shares_its_window_decision(prediction_sequence):
    X_stop, probas = prediction_sequence
    preds = [p.argmax(1) for p in probas]
    peer = DeltaFScore(2, window_size=3, threshold=0.02)
    peer_round = _peer_stop_round(peer, probas)
    ours = make_rule("delta-f", threshold=0.02, window=3)
    ours_values = [ours.statistic(StopInputs(_Given(p), _Given(probas[r - 1]) if r else None, X_stop, {}))
                   for r, p in enumerate(probas)]
    positive = [1 - f1_score(preds[r - 1], preds[r], pos_label=1) for r in range(1, len(preds))]
    macro = [1 - f1_score(preds[r - 1], preds[r], average=None).mean() for r in range(1, len(preds))]
    np.testing.assert_allclose(ours_values[1:], macro, atol=1e-12)  # ours: 1 − macro F1
    replay = DeltaFScore(2, window_size=3, threshold=0.02)
    history = []
    for r, p in enumerate(preds):  # the peer's: 1 − F1 of the positive class
        replay.stop(predictions=p)
        if r:
            history.append(replay.delta_history[-1])
    np.testing.assert_allclose(history, positive, atol=1e-12)
    assert not np.allclose(positive, macro)  # the definitions differ on this sequence
    # alloop's window decision given the peer's statistic stops where the peer stops
    fired = [ours.reached([None, *positive[:r]]) for r in range(len(preds))]
    assert peer_round is not None and fired.index(True) == peer_round
