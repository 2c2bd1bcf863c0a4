"""modAL interop, both ways, on real data (digits).

alloop → modAL: an alloop Strategy is an ActiveLearner's query_strategy; the repaired learner
teaches on scikit-learn ≥ 1.8. modAL → alloop: modAL's strategies run as alloop Strategies and
pick what modAL picks.
"""

from __future__ import annotations

import inspect

import modAL.models
import numpy as np
import pytest
import torch
from modAL.batch import uncertainty_batch_sampling
from modAL.uncertainty import margin_sampling, uncertainty_sampling
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_X_y
from threadpoolctl import threadpool_limits

import strategies
from alloop.engine.select import select_batch
from alloop.interop import ActiveLearner, context_from_learner, from_modal, model_from_learner
from alloop.models.base import DifferentiableModel, NotDifferentiableError
from alloop.models.glm import SoftmaxGLM
from alloop.models.sklearn_adapter import SklearnModel
from strategies.base import Strategy
from strategies.registry import register


def _least_confident(model, X_pool, **_):
    return 1.0 - model.predict_proba(X_pool).max(axis=1)


def _gradient_norm(model, X_pool, **_):
    # ‖∇_θ ℓ(x, ŷ)‖ at the predicted label: needs the differentiable view of the model.
    assert isinstance(model, DifferentiableModel)
    X = np.asarray(X_pool, dtype=np.float64)
    y = model.encode_y(model.predict(X))
    return model.per_point_grads(model.theta_, torch.as_tensor(X), y).norm(dim=1).numpy()


LEAST_CONFIDENT = register(
    Strategy("test-modal-least-confident", "1 − max p (test only).", _least_confident,
             ("proba", "classification"))
)
GRADIENT_NORM = register(
    Strategy("test-modal-gradient-norm", "Gradient norm at ŷ (test only).", _gradient_norm,
             ("gradients",))
)


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def digits():
    """(X_train, y_train, X_test, y_test, initial labeled indices: two per class)."""
    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    X, y = X[perm] / 16.0, y[perm]
    init = np.concatenate([np.flatnonzero(y[:1200] == c)[:2] for c in range(10)])
    return X[:1200], y[:1200], X[1200:], y[1200:], init


def make_learner(digits, query_strategy, estimator=None, cls=ActiveLearner):
    X, y, _, _, init = digits
    estimator = LogisticRegression(max_iter=2000) if estimator is None else estimator
    return cls(estimator, query_strategy=query_strategy, X_training=X[init], y_training=y[init])


def pool_of(digits):
    X, _, _, _, init = digits
    index = np.setdiff1d(np.arange(X.shape[0]), init)
    return index, X[index]


# ------------------------------------------------------------------ the stock learner is broken
def test_stock_modal_teach_on_this_scikit_learn(digits):
    X, y, _, _, init = digits
    stock = make_learner(digits, uncertainty_sampling, cls=modAL.models.ActiveLearner)
    if "force_all_finite" in inspect.signature(check_X_y).parameters:  # scikit-learn < 1.8
        stock.teach(X[:3], y[:3])
        assert stock.X_training.shape[0] == len(init) + 3
    else:  # this is why alloop.interop.ActiveLearner exists
        with pytest.raises(TypeError, match="force_all_finite"):
            stock.teach(X[:3], y[:3])
        with pytest.raises(TypeError, match="force_all_finite"):
            stock.fit(X[:30], y[:30])


def test_repaired_learner_teaches_fits_and_reprs(digits):
    X, y, _, _, init = digits
    learner = make_learner(digits, uncertainty_sampling)
    learner.teach(X[:3], y[:3])
    assert learner.X_training.shape[0] == len(init) + 3
    np.testing.assert_array_equal(learner.y_training[-3:], y[:3])
    learner.teach(X[3:5], y[3:5], only_new=True)  # refit on the new rows alone
    assert learner.X_training.shape[0] == len(init) + 3
    learner.fit(X[:100], y[:100])
    assert learner.X_training.shape[0] == 100
    assert learner.get_params()["force_all_finite"] is True and "ActiveLearner(" in repr(learner)
    with pytest.raises(ValueError, match="NaN|infinity"):
        learner.teach(np.full((1, X.shape[1]), np.nan), y[:1])


# ------------------------------------------------------------------ alloop strategy in modAL
def test_random_strategy_as_query_strategy(digits):
    learner = make_learner(digits, strategies.get("random"))
    _, X_pool = pool_of(digits)
    index, rows = learner.query(X_pool, n_instances=7)
    assert len(index) == 7 and len(set(index.tolist())) == 7
    assert np.all((index >= 0) & (index < X_pool.shape[0]))
    np.testing.assert_array_equal(rows, X_pool[index])


def test_alloop_scorer_in_modal_picks_what_modal_uncertainty_picks(digits):
    learner = make_learner(digits, LEAST_CONFIDENT)
    _, X_pool = pool_of(digits)
    index, _ = learner.query(X_pool, n_instances=10)
    modal_index, _ = uncertainty_sampling(learner, X_pool, n_instances=10)
    assert set(index.tolist()) == set(modal_index.tolist())


def test_context_from_learner(digits):
    X, y, _, _, init = digits
    learner = make_learner(digits, LEAST_CONFIDENT)
    context = context_from_learner(learner)
    np.testing.assert_array_equal(context["X_labeled"], X[init])
    np.testing.assert_array_equal(context["y_labeled"], y[init])


def test_gradient_strategy_gets_the_glm_of_the_learners_estimator(digits):
    X, y, _, _, init = digits
    estimator = LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000)
    learner = make_learner(digits, GRADIENT_NORM, estimator=estimator)
    model = model_from_learner(learner, GRADIENT_NORM)
    assert isinstance(model, SoftmaxGLM)
    np.testing.assert_array_equal(model.X_train_.numpy(), X[init])  # fitted on the labeled set
    W, _ = model.weights(model.theta_)
    np.testing.assert_allclose(W.numpy().T, estimator.coef_, rtol=0, atol=1e-6)

    _, X_pool = pool_of(digits)
    index, _ = learner.query(X_pool, n_instances=5)
    assert len(set(index.tolist())) == 5

    # a model without a differentiable form is refused, naming what is supported
    forest = make_learner(digits, GRADIENT_NORM, estimator=RandomForestClassifier(n_estimators=5))
    with pytest.raises(NotDifferentiableError, match="LogisticRegression"):
        model_from_learner(forest, GRADIENT_NORM)
    # ... while a non-gradient strategy wraps the same (fitted) forest
    wrapped = model_from_learner(forest, LEAST_CONFIDENT)
    assert isinstance(wrapped, SklearnModel) and wrapped.estimator is forest.estimator


def test_gradient_strategy_on_an_untrained_learner_says_what_is_missing():
    learner = ActiveLearner(LogisticRegression(), query_strategy=GRADIENT_NORM)
    with pytest.raises(ValueError, match="no training data"):
        model_from_learner(learner, GRADIENT_NORM)


def test_teach_rounds_improve_the_learner(digits):
    X, y, X_test, y_test, init = digits
    available = strategies.available()
    strategy = strategies.get("entropy") if "entropy" in available else LEAST_CONFIDENT
    learner = make_learner(digits, strategy)
    pool, _ = pool_of(digits)
    before = learner.score(X_test, y_test)
    for _ in range(5):
        index, _ = learner.query(X[pool], n_instances=20)
        learner.teach(X[pool[index]], y[pool[index]])
        pool = np.delete(pool, index)
    assert learner.X_training.shape[0] == len(init) + 100
    assert learner.score(X_test, y_test) > before + 0.05


# ------------------------------------------------------------------ modAL strategy in alloop
@pytest.fixture(scope="module")
def fitted(digits):
    """A learner fitted on the initial labels, its model as alloop sees it, and the pool."""
    learner = make_learner(digits, uncertainty_sampling)
    _, X_pool = pool_of(digits)
    return learner, SklearnModel(learner.estimator), X_pool


def test_from_modal_uncertainty_equals_modal_pick_and_one_minus_max_p(fitted):
    learner, model, X_pool = fitted
    strategy = from_modal(uncertainty_sampling, "modal-uncertainty", "modAL's 1 − max p.")
    scores = strategy.score(model, X_pool, X_labeled=learner.X_training)
    proba = learner.estimator.predict_proba(X_pool)
    np.testing.assert_allclose(scores, 1.0 - proba.max(axis=1), rtol=0, atol=1e-15)
    brute = np.argsort(-(1.0 - proba.max(axis=1)), kind="stable")
    for k in (1, 5, 20):
        modal_index, _ = learner.query(X_pool, n_instances=k)
        chosen = select_batch(scores, k)
        assert set(chosen.tolist()) == set(modal_index.tolist()) == set(brute[:k].tolist())


def test_from_modal_margin_equals_modal_pick(fitted):
    learner, model, X_pool = fitted
    strategy = from_modal(margin_sampling, "modal-margin", "modAL's margin.")
    scores = strategy.score(model, X_pool)
    top2 = np.sort(learner.estimator.predict_proba(X_pool), axis=1)[:, -2:]
    np.testing.assert_allclose(scores, -(top2[:, 1] - top2[:, 0]), rtol=0, atol=1e-15)
    for k in (1, 10):
        modal_index, _ = margin_sampling(learner, X_pool, n_instances=k)
        assert set(select_batch(scores, k).tolist()) == set(modal_index.tolist())


def test_from_modal_ranked_batch_keeps_modals_order(fitted):
    learner, model, X_pool = fitted
    X_pool = X_pool[:120]  # the whole-pool ranking is O(n²)
    strategy = from_modal(uncertainty_batch_sampling, "modal-ranked-batch", "modAL's ranked batch.")
    scores = strategy.score(model, X_pool, X_labeled=learner.X_training,
                            y_labeled=learner.y_training)
    for k in (1, 4, 12):
        modal_index, _ = uncertainty_batch_sampling(learner, X_pool, n_instances=k)
        np.testing.assert_array_equal(select_batch(scores, k), modal_index)


def test_from_modal_runs_on_an_alloop_glm(digits, fitted):
    X, y, _, _, init = digits
    learner, _, X_pool = fitted
    glm = SoftmaxGLM(s=0.0).fit(X[init], y[init])
    strategy = from_modal(uncertainty_sampling, "modal-uncertainty", "modAL's 1 − max p.")
    scores = strategy.score(glm, X_pool)
    np.testing.assert_allclose(scores, 1.0 - glm.predict_proba(X_pool).max(axis=1), atol=1e-15)


def test_from_modal_round_trips_back_into_modal(fitted):
    learner, _, X_pool = fitted
    strategy = from_modal(uncertainty_sampling, "modal-uncertainty", "modAL's 1 − max p.")
    round_trip = ActiveLearner(learner.estimator, query_strategy=strategy,
                               X_training=learner.X_training, y_training=learner.y_training)
    index, _ = round_trip.query(X_pool, n_instances=8)
    modal_index, _ = uncertainty_sampling(learner, X_pool, n_instances=8)
    assert set(index.tolist()) == set(modal_index.tolist())


def test_from_modal_needs_an_order_for_unknown_functions(fitted):
    learner, model, X_pool = fitted

    def first_feature(classifier, X, n_instances=1):
        values = np.asarray(X)[:, 0]
        index = np.argsort(-values)[:n_instances]
        return index, values[index]

    with pytest.raises(ValueError, match="order="):
        from_modal(first_feature, "first", "first feature")
    with pytest.raises(ValueError, match="unknown order"):
        from_modal(first_feature, "first", "first feature", order="largest")
    strategy = from_modal(first_feature, "first", "first feature", order="max")
    np.testing.assert_array_equal(strategy.score(model, X_pool), X_pool[:, 0])
