"""scikit-learn estimators in alloop.

Three entry points:

* :class:`SklearnModel` wraps any scikit-learn classifier or regressor into the :class:`Model`
  protocol, which is all the non-gradient strategies need.
* :func:`from_sklearn` maps ``LogisticRegression`` (L2) and ``Ridge`` onto alloop's torch GLMs,
  whose objective is the same, so θ* is the same and the tangent and influence math applies.
* :func:`as_model` picks between the two (and passes alloop's own models through).

The λ conventions (``docs/math.md`` §1) with the summed loss Σℓ + e^s·½‖w‖²:
``LogisticRegression(C=c)`` is ``s = −log c``; ``Ridge(alpha=a)`` is ``s = log a`` with σ² = 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import sklearn.base
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.metaestimators import available_if

from alloop.models.base import DifferentiableModel, NotDifferentiableError, Task
from alloop.models.glm import GLM, LinearGLM, LogisticGLM, SoftmaxGLM
from alloop.models.tensors import DTYPE

#: What :func:`from_sklearn` maps, as the error messages list it.
SUPPORTED = (
    "sklearn.linear_model.LogisticRegression with an L2 penalty (the default l1_ratio=0, or "
    "penalty='l2') and a finite C, binary or multinomial",
    "sklearn.linear_model.Ridge with a scalar alpha > 0 and one target",
    "alloop's own DifferentiableModel subclasses (LinearGLM, LogisticGLM, SoftmaxGLM, torch models)",
)


def _supported() -> str:
    return "Supported differentiable models: " + "; ".join(SUPPORTED) + "."


def _to_sklearn_input(X: Any) -> Any:
    """scikit-learn takes numpy, scipy sparse and DataFrames as they are; torch goes to numpy."""
    if isinstance(X, torch.Tensor):
        X = X.to_dense() if X.layout != torch.strided else X
        return X.detach().cpu().numpy()
    return X


# --------------------------------------------------------------------------------- wrapper
class SklearnModel:
    """Any scikit-learn classifier or regressor behind alloop's :class:`Model` protocol.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Used as given, not copied: a fitted estimator stays fitted and is shared with the caller
        (a modAL learner's estimator, for example). :meth:`clone` makes an unfitted copy.

    Notes
    -----
    ``predict_proba`` exists only when the estimator has one (``hasattr`` tells), and its
    columns follow ``classes_``: the classes declared at :meth:`fit` (``classes=``) in sorted
    order, with zero probability for a declared class absent from the labeled data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([0, 0, 2])
    >>> model = SklearnModel(DecisionTreeClassifier()).fit(X, y, classes=[0, 1, 2])
    >>> model.predict_proba(np.array([[2.0]])).tolist()
    [[0.0, 0.0, 1.0]]
    """

    def __init__(self, estimator: Any) -> None:
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise TypeError(
                f"SklearnModel wraps an estimator with fit and predict; got "
                f"{type(estimator).__name__}"
            )
        self.estimator = estimator
        self._declared_classes: np.ndarray | None = None

    @property
    def task(self) -> Task:
        return "classification" if sklearn.base.is_classifier(self.estimator) else "regression"

    @property
    def classes_(self) -> np.ndarray | None:
        """The classes ``predict_proba`` columns follow (``None`` for regression or unfitted)."""
        if self.task != "classification":
            return None
        if self._declared_classes is not None:
            return self._declared_classes
        fitted = getattr(self.estimator, "classes_", None)
        return None if fitted is None else np.asarray(fitted)

    #: no regularity the loop can set: the estimator's own (C, alpha, ...) is used as given
    s = None

    def __repr__(self) -> str:
        return f"SklearnModel({self.estimator!r})"

    def with_s(self, s: Any) -> SklearnModel:
        """This model when ``s`` is None; a scikit-learn estimator has no regularity s to set.

        Raises
        ------
        ValueError
            For any other ``s``: set the estimator's own parameter (``C=``, ``alpha=``), or
            pass a ``LogisticRegression`` / ``Ridge`` to a gradient strategy, which maps it to
            a GLM with an ``s``.
        """
        if s is None:
            return self
        raise ValueError(
            f"{self!r} has no regularity s to set (got s = {s!r}): set the estimator's own "
            "parameter (C=, alpha=), or use an alloop GLM (alloop.models) for a searched s"
        )

    def fit(self, X: Any, y: Any, classes: Any | None = None) -> SklearnModel:
        """Fit the estimator on (X, y); ``classes`` declares every class the pool may hold."""
        y = np.asarray(y)
        self.estimator.fit(_to_sklearn_input(X), y)
        self._declared_classes = None
        if self.task == "classification" and classes is not None:
            declared = np.asarray(sorted(set(np.asarray(classes).tolist())))
            unknown = np.setdiff1d(np.asarray(self.estimator.classes_), declared)
            if unknown.size:
                raise ValueError(
                    f"labels {unknown.tolist()!r} are not among the declared classes "
                    f"{declared.tolist()!r}; declare every class up front (`classes=`)"
                )
            self._declared_classes = declared
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(_to_sklearn_input(X)))

    def _has_proba(self) -> bool:
        return self.task == "classification" and hasattr(self.estimator, "predict_proba")

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, len(classes_)), columns in ``classes_`` order."""
        proba = np.asarray(self.estimator.predict_proba(_to_sklearn_input(X)), dtype=np.float64)
        classes = self.classes_
        fitted = np.asarray(self.estimator.classes_)
        if classes is None or np.array_equal(classes, fitted):
            return proba
        out = np.zeros((proba.shape[0], len(classes)))
        out[:, np.searchsorted(classes, fitted)] = proba
        return out

    def clone(self) -> SklearnModel:
        """An unfitted copy with the same hyperparameters (``sklearn.base.clone``)."""
        return SklearnModel(sklearn.base.clone(self.estimator))


# --------------------------------------------------------------------------------- GLM mapping
def _is_fitted(estimator: Any) -> bool:
    return hasattr(estimator, "coef_")


def _logistic_s(estimator: LogisticRegression) -> float:
    """s = −log C, after checking the penalty is a plain L2 one."""
    penalty = getattr(estimator, "penalty", "l2")
    l1_ratio = getattr(estimator, "l1_ratio", None)
    # scikit-learn ≥ 1.8 deprecates `penalty` (default "deprecated") in favour of l1_ratio and C.
    if penalty in ("deprecated", "elasticnet"):
        l2 = l1_ratio is None or l1_ratio == 0
    else:
        l2 = penalty == "l2"
    if not l2:
        raise NotDifferentiableError(
            f"LogisticRegression(penalty={penalty!r}, l1_ratio={l1_ratio!r}) has an L1 part, "
            f"which is not twice differentiable; use l1_ratio=0. {_supported()}"
        )
    C = float(estimator.C)
    if not (np.isfinite(C) and C > 0):
        raise NotDifferentiableError(
            f"LogisticRegression(C={estimator.C!r}) is unpenalized: θ* need not exist and the "
            f"regularity s = −log C is not finite; set a finite C > 0. {_supported()}"
        )
    if estimator.class_weight is not None:
        raise NotDifferentiableError(
            f"LogisticRegression(class_weight={estimator.class_weight!r}) weights the loss; "
            f"alloop's GLMs use the unweighted summed loss, so drop class_weight. {_supported()}"
        )
    if estimator.solver == "liblinear" and estimator.fit_intercept:
        warnings.warn(
            "solver='liblinear' penalizes the intercept; the GLM leaves it unpenalized, so its "
            "θ* differs slightly from this estimator's. Use solver='lbfgs' or 'newton-cholesky' "
            "for an exact match.",
            UserWarning,
            stacklevel=3,
        )
    return -float(np.log(C))


def _logistic_glm(estimator: LogisticRegression, classes: Any | None) -> GLM:
    if classes is not None:
        n_classes = len(set(np.asarray(classes).tolist()))
    elif _is_fitted(estimator):
        n_classes = len(estimator.classes_)
    else:
        raise ValueError(
            "cannot tell a binary from a multinomial model for an unfitted LogisticRegression; "
            "fit it first or pass classes= (every class the labels may take)"
        )
    if n_classes < 2:
        raise ValueError(f"classification needs at least two classes; got {n_classes}")
    multi_class = getattr(estimator, "multi_class", "deprecated")  # removed in scikit-learn 1.8
    if n_classes > 2 and (
        multi_class == "ovr" or (multi_class == "auto" and estimator.solver == "liblinear")
    ):
        raise NotDifferentiableError(
            "one-vs-rest LogisticRegression is K separate binary models, not one softmax GLM; "
            f"use the multinomial loss. {_supported()}"
        )
    s = _logistic_s(estimator)
    kind = LogisticGLM if n_classes == 2 else SoftmaxGLM
    return kind(s=s, fit_intercept=bool(estimator.fit_intercept))


def _ridge_glm(estimator: Ridge) -> GLM:
    alpha = np.asarray(estimator.alpha, dtype=np.float64)
    if alpha.ndim != 0 or not (np.isfinite(alpha) and alpha > 0):
        raise NotDifferentiableError(
            f"Ridge(alpha={estimator.alpha!r}) is not mapped: the GLM needs one scalar alpha > 0 "
            f"(s = log alpha). {_supported()}"
        )
    if estimator.positive:
        raise NotDifferentiableError(
            f"Ridge(positive=True) is a constrained problem without a smooth θ*(s). {_supported()}"
        )
    if _is_fitted(estimator) and np.ndim(estimator.coef_) != 1:
        raise NotDifferentiableError(
            f"this Ridge was fitted on {np.shape(estimator.coef_)[0]} targets; the GLM mapping "
            f"takes one. {_supported()}"
        )
    return LinearGLM(s=float(np.log(alpha)), fit_intercept=bool(estimator.fit_intercept), sigma2=1.0)


def _warm_start(glm: GLM, estimator: Any) -> None:
    """Load coef_/intercept_ as θ in the GLM's layout: (d + 1, K) row-major, intercept last."""
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))  # (K, d)
    rows = [coef.T]
    if glm.fit_intercept:
        intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
        if glm.likelihood == "categorical":
            # softmax intercepts are free up to a common constant; alloop keeps them centred.
            intercept = intercept - intercept.mean()
        rows.append(intercept.reshape(1, -1))
    M = np.vstack(rows)
    glm.n_features_, glm.n_outputs_ = coef.shape[1], coef.shape[0]
    glm.theta_ = torch.as_tensor(M.reshape(-1), dtype=DTYPE).clone()
    if glm.task == "classification":
        glm.classes_ = np.asarray(estimator.classes_)


def from_sklearn(estimator: Any, classes: Any | None = None) -> GLM:
    """The alloop GLM with the same objective as a scikit-learn linear model.

    Parameters
    ----------
    estimator : LogisticRegression or Ridge
        ``LogisticRegression`` (L2, finite ``C``) becomes a :class:`LogisticGLM` (two classes)
        or :class:`SoftmaxGLM` (more) with ``s = −log C``; ``Ridge`` becomes a
        :class:`LinearGLM` with ``s = log alpha`` and σ² = 1. ``fit_intercept`` carries over.
        A :class:`SklearnModel` is unwrapped.
    classes : array-like, optional
        Every class the labels may take, for ``LogisticRegression`` (it chooses binary or
        softmax). Defaults to the fitted estimator's ``classes_``; required when unfitted. If
        it differs from ``classes_``, the GLM starts unfitted (the layouts do not match).

    Returns
    -------
    GLM
        Unfitted for an unfitted estimator. For a fitted one, ``theta_`` (and ``classes_``) hold
        the estimator's coefficients, so it predicts as the estimator does; call
        ``fit(X, y)`` on the training data before using gradients: that refits θ* to alloop's
        tight tolerance, warm-started there, and stores the data the tangent solvers need.

    Raises
    ------
    NotDifferentiableError
        For any other estimator or penalty; the message lists what is supported.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> glm = from_sklearn(Ridge(alpha=2.0))
    >>> type(glm).__name__, bool(np.isclose(glm.s, np.log(2.0)))
    ('LinearGLM', True)
    """
    if isinstance(estimator, SklearnModel):
        estimator = estimator.estimator
    # Exact types: subclasses (LogisticRegressionCV, …) may carry a different objective.
    if type(estimator) is LogisticRegression:
        glm = _logistic_glm(estimator, classes)
    elif type(estimator) is Ridge:
        glm = _ridge_glm(estimator)
    else:
        raise NotDifferentiableError(
            f"{type(estimator).__name__} has no differentiable GLM mapping in alloop, so "
            f"gradient-based strategies cannot use it (the others can, via SklearnModel). "
            f"{_supported()}"
        )
    if _is_fitted(estimator) and (
        classes is None
        or set(np.asarray(classes).tolist()) == set(np.asarray(estimator.classes_).tolist())
    ):
        _warm_start(glm, estimator)
    return glm


# --------------------------------------------------------------------------------- dispatch
def as_model(obj: Any, differentiable: bool = False, classes: Any | None = None) -> Any:
    """Whatever the user passed, as a model alloop's loop and strategies can use.

    Parameters
    ----------
    obj : DifferentiableModel, scikit-learn estimator, SklearnModel, or any object with
        ``fit`` and ``predict``.
    differentiable : bool
        True when a gradient-based strategy will use the model: ``LogisticRegression`` and
        ``Ridge`` then map to their GLM (:func:`from_sklearn`) and anything without a
        gradient view raises :class:`NotDifferentiableError`.
    classes : array-like, optional
        Passed to :func:`from_sklearn` for an unfitted ``LogisticRegression``.

    Returns
    -------
    model
        ``obj`` itself for alloop models and duck-typed models; a :class:`SklearnModel` or a
        GLM for scikit-learn estimators.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> type(as_model(RandomForestClassifier())).__name__
    'SklearnModel'
    >>> type(as_model(LogisticRegression(), differentiable=True, classes=[0, 1])).__name__
    'LogisticGLM'
    """
    from alloop.models.capabilities import OwnRegularityScores

    if isinstance(obj, DifferentiableModel | OwnRegularityScores):  # e.g. the hierarchical multi-user model
        return obj
    estimator = obj.estimator if isinstance(obj, SklearnModel) else obj
    if isinstance(estimator, sklearn.base.BaseEstimator):
        if differentiable:
            return from_sklearn(estimator, classes=classes)
        return obj if isinstance(obj, SklearnModel) else SklearnModel(estimator)
    if hasattr(obj, "fit") and hasattr(obj, "predict"):
        if differentiable:
            raise NotDifferentiableError(
                f"{type(obj).__name__} does not expose parameters and per-point losses, which "
                f"gradient-based strategies need. {_supported()}"
            )
        return obj
    raise TypeError(
        f"cannot use a {type(obj).__name__} as a model: pass a scikit-learn estimator, an "
        "alloop DifferentiableModel, or an object with fit(X, y) and predict(X)"
    )
