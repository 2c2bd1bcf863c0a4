"""scikit-learn adapter: the GLM mapping reproduces scikit-learn's θ*; the wrapper aligns classes.

The reference is scikit-learn itself, fitted with an exact Newton solver to a tight tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from alloop.models.base import Model, NotDifferentiableError
from alloop.models.glm import LinearGLM, LogisticGLM, SoftmaxGLM
from alloop.models.sklearn_adapter import SklearnModel, as_model, from_sklearn

ATOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    # scikit-learn's solvers spin several BLAS threads; on a shared machine one is faster.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


def tight_logistic(C: float, fit_intercept: bool) -> LogisticRegression:
    return LogisticRegression(
        C=C, fit_intercept=fit_intercept, solver="newton-cholesky", tol=1e-12, max_iter=1000
    )


@pytest.fixture(scope="module")
def digits_tight(digits):
    """The tight multinomial fit on digits, C = 1, with intercept (shared: it is the slow one)."""
    X, y = digits
    return tight_logistic(1.0, True).fit(X, y)


def glm_coefficients(glm) -> tuple[np.ndarray, np.ndarray | None]:
    """(coef (K, d), intercept (K,) or None) in scikit-learn's layout."""
    W, b = glm.weights(glm.theta_)
    return W.numpy().T, None if b is None else b.numpy()


# ------------------------------------------------------------------ θ* equals scikit-learn's
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_logistic_binary_matches_sklearn(cancer, fit_intercept):
    X, y = cancer
    sk = tight_logistic(0.5, fit_intercept).fit(X, y)
    glm = from_sklearn(clone(sk), classes=[0, 1])  # unfitted: the solve starts from zero
    assert isinstance(glm, LogisticGLM) and glm.s == pytest.approx(-np.log(0.5))
    glm.fit(X, y)
    coef, intercept = glm_coefficients(glm)
    np.testing.assert_allclose(coef, sk.coef_, rtol=0, atol=ATOL)
    if fit_intercept:
        np.testing.assert_allclose(intercept, sk.intercept_, rtol=0, atol=ATOL)
    else:
        assert intercept is None
    np.testing.assert_allclose(glm.predict_proba(X), sk.predict_proba(X), rtol=0, atol=ATOL)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_softmax_matches_sklearn(digits, digits_tight, fit_intercept):
    X, y = digits
    sk = digits_tight if fit_intercept else tight_logistic(1.0, False).fit(X, y)
    glm = from_sklearn(clone(sk), classes=np.arange(10))
    assert isinstance(glm, SoftmaxGLM) and glm.s == pytest.approx(0.0)
    glm.fit(X, y)
    coef, intercept = glm_coefficients(glm)
    np.testing.assert_allclose(coef, sk.coef_, rtol=0, atol=ATOL)
    if fit_intercept:
        # Softmax intercepts are identified up to a common constant; both keep them centred.
        assert abs(intercept.sum()) < 1e-9
        np.testing.assert_allclose(
            intercept - intercept.mean(), sk.intercept_ - sk.intercept_.mean(), rtol=0, atol=ATOL
        )
    np.testing.assert_allclose(glm.predict_proba(X), sk.predict_proba(X), rtol=0, atol=ATOL)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_matches_sklearn(diabetes, fit_intercept):
    X, y = diabetes
    sk = Ridge(alpha=0.5, fit_intercept=fit_intercept, solver="cholesky").fit(X, y)
    glm = from_sklearn(clone(sk))
    assert isinstance(glm, LinearGLM)
    assert glm.s == pytest.approx(np.log(0.5)) and glm.sigma2 == 1.0
    glm.fit(X, y)
    coef, intercept = glm_coefficients(glm)
    np.testing.assert_allclose(coef[0], sk.coef_, rtol=0, atol=ATOL)
    if fit_intercept:
        assert intercept[0] == pytest.approx(sk.intercept_, abs=ATOL)
    np.testing.assert_allclose(glm.predict(X), sk.predict(X), rtol=0, atol=ATOL)


# ------------------------------------------------------------------ fitted estimators
@pytest.mark.parametrize("dataset", ["cancer", "digits", "diabetes"])
def test_fitted_estimator_sets_theta_in_the_glm_layout(request, dataset):
    X, y = request.getfixturevalue(dataset)
    if dataset == "digits":
        sk = request.getfixturevalue("digits_tight")
    else:
        sk = (Ridge(alpha=2.0) if dataset == "diabetes" else tight_logistic(0.3, True)).fit(X, y)
    glm = from_sklearn(sk)
    assert glm.X_train_ is None  # not fitted on data yet: a warm start only
    d, k = X.shape[1], 1 if dataset != "digits" else 10
    M = glm.theta_.view(d + 1, k).numpy()  # row-major (d + 1, K), intercept last
    np.testing.assert_array_equal(M[:d].T, np.atleast_2d(sk.coef_))
    if dataset == "diabetes":
        np.testing.assert_allclose(glm.predict(X), sk.predict(X), rtol=1e-12)
    else:
        np.testing.assert_array_equal(glm.classes_, sk.classes_)
        np.testing.assert_allclose(glm.predict_proba(X), sk.predict_proba(X), atol=1e-12)


def test_warm_start_is_refit_to_the_tight_optimum(digits, digits_tight):
    X, y = digits
    loose = LogisticRegression(C=1.0, solver="lbfgs", max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loose.fit(X, y)
    tight = digits_tight
    glm = from_sklearn(loose)
    start = glm.theta_.clone()
    glm.fit(X, y)
    coef, _ = glm_coefficients(glm)
    assert np.abs(coef - loose.coef_).max() > 1e-2  # the loose start really was off
    np.testing.assert_allclose(coef, tight.coef_, rtol=0, atol=ATOL)
    assert torch.equal(glm.X_train_, torch.as_tensor(X))
    assert not torch.equal(start, glm.theta_)


# ------------------------------------------------------------------ what is not mapped
@pytest.mark.parametrize(
    "estimator, fragment",
    [
        (RandomForestClassifier(), "RandomForestClassifier"),
        (LogisticRegression(l1_ratio=1.0, solver="saga"), "l1_ratio"),
        (LogisticRegression(l1_ratio=0.5, solver="saga"), "l1_ratio"),
        (LogisticRegression(C=np.inf), "finite C"),
        (LogisticRegression(class_weight="balanced"), "class_weight"),
        (Ridge(alpha=0.0), "alpha"),
        (Ridge(positive=True), "positive"),
    ],
)
def test_unsupported_raises_not_differentiable(estimator, fragment):
    with pytest.raises(NotDifferentiableError) as info:
        from_sklearn(estimator, classes=[0, 1])
    message = str(info.value)
    assert fragment in message
    assert "LogisticRegression" in message and "Ridge" in message  # lists what is supported


def test_random_forest_as_differentiable_model_raises():
    with pytest.raises(NotDifferentiableError, match="Supported differentiable models"):
        as_model(RandomForestClassifier(), differentiable=True)


def test_declared_classes_beyond_the_fitted_ones_choose_the_glm(cancer):
    X, y = cancer
    sk = tight_logistic(1.0, True).fit(X, y)  # saw classes 0 and 1
    glm = from_sklearn(sk, classes=[0, 1, 2])
    assert isinstance(glm, SoftmaxGLM) and glm.theta_ is None  # no layout to warm-start from
    assert from_sklearn(sk, classes=[1, 0]).theta_ is not None


def test_unfitted_logistic_needs_classes():
    with pytest.raises(ValueError, match="classes="):
        from_sklearn(LogisticRegression())


def test_multi_target_ridge_is_refused(diabetes):
    X, y = diabetes
    sk = Ridge().fit(X, np.column_stack([y, -y]))
    with pytest.raises(NotDifferentiableError, match="2 targets"):
        from_sklearn(sk)


# ------------------------------------------------------------------ as_model dispatch
class DuckModel:
    task = "regression"
    classes_ = None

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def clone(self):
        return DuckModel()


def test_as_model_dispatch():
    glm = LogisticGLM()
    assert as_model(glm) is glm and as_model(glm, differentiable=True) is glm

    lr = LogisticRegression()
    wrapped = as_model(lr)
    assert isinstance(wrapped, SklearnModel) and wrapped.estimator is lr
    assert as_model(wrapped) is wrapped
    assert isinstance(as_model(lr, differentiable=True, classes=[0, 1]), LogisticGLM)
    assert isinstance(as_model(lr, differentiable=True, classes=[0, 1, 2]), SoftmaxGLM)
    assert isinstance(as_model(wrapped, differentiable=True, classes=[0, 1]), LogisticGLM)
    assert isinstance(as_model(Ridge(), differentiable=True), LinearGLM)
    assert isinstance(as_model(Ridge()), SklearnModel)

    rf = RandomForestClassifier()
    assert isinstance(as_model(rf), SklearnModel) and as_model(rf).estimator is rf

    duck = DuckModel()
    assert as_model(duck) is duck
    with pytest.raises(NotDifferentiableError):
        as_model(duck, differentiable=True)
    with pytest.raises(TypeError, match="cannot use a object as a model"):
        as_model(object())


# ------------------------------------------------------------------ SklearnModel
def test_sklearn_model_aligns_probabilities_to_declared_classes(digits):
    X, y = digits
    present = np.isin(y, [1, 3, 7])
    Xs, ys = X[present][:150], y[present][:150]
    model = SklearnModel(RandomForestClassifier(n_estimators=25, random_state=0))
    assert isinstance(model, Model)
    model.fit(Xs, ys, classes=range(10))
    assert model.task == "classification"
    np.testing.assert_array_equal(model.classes_, np.arange(10))

    proba = model.predict_proba(X[:200])
    raw = model.estimator.predict_proba(X[:200])  # columns for classes 1, 3, 7
    assert proba.shape == (200, 10)
    np.testing.assert_array_equal(proba[:, [1, 3, 7]], raw)
    np.testing.assert_array_equal(proba[:, [0, 2, 4, 5, 6, 8, 9]], 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X[:200]))

    # torch input is accepted and gives the same answer
    np.testing.assert_array_equal(model.predict_proba(torch.as_tensor(X[:200])), proba)


def test_sklearn_model_without_declared_classes_uses_the_fitted_ones(digits):
    X, y = digits
    model = SklearnModel(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    np.testing.assert_array_equal(model.predict_proba(X[:5]), model.estimator.predict_proba(X[:5]))


def test_sklearn_model_rejects_undeclared_labels(digits):
    X, y = digits
    with pytest.raises(ValueError, match="not among the declared classes"):
        SklearnModel(RandomForestClassifier(n_estimators=5)).fit(X, y, classes=[0, 1, 2])


def test_sklearn_model_clone_is_unfitted_with_same_params(digits):
    X, y = digits
    model = SklearnModel(RandomForestClassifier(n_estimators=7, random_state=3)).fit(X, y)
    copy = model.clone()
    assert copy.estimator is not model.estimator
    assert copy.estimator.get_params() == model.estimator.get_params()
    assert not hasattr(copy.estimator, "estimators_") and copy.classes_ is None


def test_sklearn_model_regressor_has_no_predict_proba(diabetes):
    X, y = diabetes
    model = SklearnModel(RandomForestRegressor(n_estimators=5, random_state=0)).fit(X, y)
    assert model.task == "regression" and model.classes_ is None
    assert not hasattr(model, "predict_proba")
    np.testing.assert_array_equal(model.predict(X[:3]), model.estimator.predict(X[:3]))


def test_sklearn_model_requires_fit_and_predict():
    with pytest.raises(TypeError, match="fit and predict"):
        SklearnModel(object())
