"""modAL interoperability, both ways.

* alloop → modAL: :func:`as_query_strategy` makes an alloop :class:`~strategies.base.Strategy`
  a modAL ``query_strategy`` (score, then choose the batch by the strategy's rule);
  :func:`model_from_learner` and :func:`context_from_learner` give it the model and the labeled
  data of a modAL learner. :class:`ActiveLearner` is modAL's learner with the data checks that
  scikit-learn ≥ 1.8 broke repaired, and takes a Strategy as its ``query_strategy`` as it is.
* modAL → alloop: :func:`from_modal` turns one of modAL's query strategies into an alloop
  Strategy, so it runs in alloop's loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import modAL.models
import numpy as np
import sklearn
from modAL.batch import uncertainty_batch_sampling
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from modAL.utils.data import data_vstack
from packaging.version import Version
from sklearn.utils import check_X_y

from alloop.engine.select import select_batch
from alloop.models.base import DifferentiableModel
from alloop.models.sklearn_adapter import as_model
from strategies.base import Strategy

# scikit-learn 1.6 renamed check_X_y's `force_all_finite` to `ensure_all_finite` and 1.8 removed
# the old name, which modAL 0.4.2.1 still passes.
_FINITE_KEYWORD = (
    "ensure_all_finite"
    if Version(sklearn.__version__).release >= (1, 6)
    else "force_all_finite"
)


class ActiveLearner(modAL.models.ActiveLearner):
    """modAL's ``ActiveLearner``, working on every scikit-learn from 1.5 to 1.9 and later.

    modAL 0.4.2.1 validates new labels with ``check_X_y(..., force_all_finite=...)``, a keyword
    scikit-learn 1.8 removed, so its ``teach`` and ``fit`` raise ``TypeError``. This subclass
    redoes those checks with whichever keyword the installed scikit-learn takes; everything
    else is modAL's. It also keeps ``bootstrap_init`` and ``force_all_finite`` as attributes
    so ``repr`` and ``get_params`` work, and keeps ``force_all_finite`` out of the
    estimator's ``fit`` keywords.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> learner = ActiveLearner(LogisticRegression(), X_training=X[[0, 3]], y_training=y[[0, 3]])
    >>> learner.teach(X[1:3], y[1:3])
    >>> learner.X_training.shape
    (4, 1)
    """

    def __init__(
        self,
        estimator: Any,
        query_strategy: Callable = uncertainty_sampling,
        X_training: Any | None = None,
        y_training: Any | None = None,
        bootstrap_init: bool = False,
        on_transformed: bool = False,
        force_all_finite: bool = True,
        **fit_kwargs: Any,
    ) -> None:
        self.bootstrap_init = bootstrap_init
        super().__init__(
            estimator, query_strategy, X_training=X_training, y_training=y_training,
            bootstrap_init=bootstrap_init, on_transformed=on_transformed, **fit_kwargs,
        )
        # modAL's BaseLearner reads this from **fit_kwargs; set it after, without passing it on.
        if not isinstance(force_all_finite, bool):
            raise TypeError(f"force_all_finite must be a bool; got {force_all_finite!r}")
        self.force_all_finite = force_all_finite

    def _check_X_y(self, X: Any, y: Any) -> None:
        check_X_y(
            X, y, accept_sparse=True, ensure_2d=False, allow_nd=True, multi_output=True,
            dtype=None, **{_FINITE_KEYWORD: self.force_all_finite},
        )

    def _add_training_data(self, X: Any, y: Any) -> None:
        """Append (X, y) to the known data without refitting."""
        self._check_X_y(X, y)
        if self.X_training is None:
            self.X_training, self.y_training = X, y
            return
        try:
            self.X_training = data_vstack((self.X_training, X))
            self.y_training = data_vstack((self.y_training, y))
        except ValueError as exc:
            raise ValueError(
                f"new data of shape {np.shape(X)} / labels of shape {np.shape(y)} do not stack "
                f"onto the training data of shape {np.shape(self.X_training)} / "
                f"{np.shape(self.y_training)}"
            ) from exc

    def fit(self, X: Any, y: Any, bootstrap: bool = False, **fit_kwargs: Any) -> ActiveLearner:
        """Forget the known data, keep (X, y) instead, and fit the estimator on it."""
        self._check_X_y(X, y)
        self.X_training, self.y_training = X, y
        return self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    def teach(
        self, X: Any, y: Any, bootstrap: bool = False, only_new: bool = False, **fit_kwargs: Any
    ) -> None:
        """Add (X, y) to the known data and refit (on the new data only if ``only_new``)."""
        if not only_new:
            self._add_training_data(X, y)
            self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)
        else:
            self._check_X_y(X, y)
            self._fit_on_new(X, y, bootstrap=bootstrap, **fit_kwargs)


    @property
    def query_strategy(self) -> Callable:
        """modAL's ``query_strategy``; a :class:`~strategies.base.Strategy` set here is wrapped
        by :func:`as_query_strategy`."""
        return self._query_strategy

    @query_strategy.setter
    def query_strategy(self, strategy: Callable) -> None:
        self._query_strategy = as_query_strategy(strategy) if isinstance(strategy, Strategy) else strategy


# ----------------------------------------------------------------------- alloop → modAL
class QueryStrategy:
    """An alloop Strategy as a modAL ``query_strategy``: ``(indices of the chosen rows, scores)``.

    It always returns a tuple; modAL calls a strategy a second time when the first call raises
    or returns something else. ``name``, ``needs`` and the rest read through to the strategy.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def __getattr__(self, name: str) -> Any:
        if name == "strategy":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def __repr__(self) -> str:
        return f"as_query_strategy({self.strategy.name!r})"

    def __call__(
        self, learner: Any, X_pool: Any, n_instances: int = 1, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        strategy = self.strategy
        model = model_from_learner(learner, strategy)
        context = {**context_from_learner(learner), **kwargs}
        rng = context.setdefault("rng", np.random.default_rng(0))
        context.setdefault("n_instances", n_instances)
        scores = strategy.score(model, X_pool, **context)
        index = select_batch(
            scores, n_instances, strategy.batch, X_pool=X_pool,
            X_labeled=context.get("X_labeled"), rng=rng,
            center_distance=strategy.labeled_distance(scores, context.get("X_labeled")),
        )
        return index, scores[index]


def as_query_strategy(strategy: Strategy) -> QueryStrategy:
    """``strategy`` as a modAL ``query_strategy``, for modAL's own learner.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> learner = ActiveLearner(LogisticRegression(), X_training=X[[0, 3]], y_training=y[[0, 3]],
    ...                         query_strategy=as_query_strategy(strategies.get("margin")))
    >>> index, _ = learner.query(X[1:3], n_instances=1)
    >>> index.shape
    (1,)
    """
    if not isinstance(strategy, Strategy):
        raise TypeError(
            f"as_query_strategy takes an alloop Strategy (strategies.get(name)); got "
            f"{type(strategy).__name__}"
        )
    return QueryStrategy(strategy)


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    return y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y


def model_from_learner(learner: Any, strategy: Any) -> Any:
    """The alloop model a strategy scores with, taken from a modAL learner.

    The learner's estimator as :func:`~alloop.models.sklearn_adapter.as_model` sees it. When
    the strategy needs gradients and the estimator is a scikit-learn ``LogisticRegression`` or
    ``Ridge``, its GLM is fitted on ``learner.X_training`` / ``y_training`` (warm-started at the
    estimator's coefficients), so θ* and the training data are there for the tangent math.

    Raises
    ------
    NotDifferentiableError
        If the strategy needs gradients and the estimator has no differentiable form.
    ValueError
        If a GLM has to be fitted but the learner has no training data yet.
    """
    from alloop.models.sklearn_adapter import SklearnModel

    name = getattr(strategy, "name", strategy)
    wrong = isinstance(learner, DifferentiableModel | SklearnModel)
    if not wrong:
        try:
            estimator, _ = learner.estimator, learner.X_training
        except AttributeError:
            wrong = True
    if wrong:
        raise TypeError(
            f"strategy {name!r} was called the modAL way, strategy(learner, X_pool, "
            f"n_instances), with a {type(learner).__name__}, which is not a modAL learner. For "
            f"scores of a model use strategies.get({name!r}).score(model, X_pool, X_labeled=..., "
            "y_labeled=...); to query with modAL wrap the estimator: "
            "alloop.interop.ActiveLearner(estimator, query_strategy=strategy, X_training=..., "
            "y_training=...).query(X_pool)"
        )
    classes = getattr(estimator, "classes_", None)
    differentiable = "gradients" in getattr(strategy, "needs", ())
    mapped = differentiable and not isinstance(estimator, DifferentiableModel)
    if mapped and learner.X_training is None:
        raise ValueError(
            f"strategy {getattr(strategy, 'name', strategy)!r} needs a fitted differentiable "
            "model, but the learner has no training data; give it X_training and y_training"
        )
    model = as_model(estimator, differentiable=differentiable, classes=classes)
    if mapped:
        model.fit(learner.X_training, _labels(learner.y_training), classes=classes)
    return model


def context_from_learner(learner: Any) -> dict[str, Any]:
    """The scoring context a modAL learner provides: its labeled data."""
    y = learner.y_training
    return {
        "X_labeled": learner.X_training,
        "y_labeled": None if y is None else _labels(y),
    }


# ----------------------------------------------------------------------- modAL → alloop
class ModelAsLearner:
    """The parts of a modAL learner that modAL's query strategies read, over an alloop model.

    ``predict_proba`` / ``predict`` go to the model, ``estimator`` is the model (the wrapped
    scikit-learn estimator for a ``SklearnModel``), ``X_training`` / ``y_training`` are the
    labeled data (``None`` when there are none, which modAL treats as a cold start).
    """

    on_transformed = False

    def __init__(self, model: Any, X_training: Any | None = None, y_training: Any | None = None):
        self.model = model
        self.estimator = getattr(model, "estimator", model)
        empty = X_training is None or X_training.shape[0] == 0
        self.X_training = None if empty else X_training
        self.y_training = None if empty else y_training

    def predict_proba(self, X: Any, **_: Any) -> np.ndarray:
        return self.model.predict_proba(X)

    def predict(self, X: Any, **_: Any) -> np.ndarray:
        return self.model.predict(X)

    def transform_without_estimating(self, X: Any) -> Any:
        return X


#: How the ranking of modAL's own strategies reads off their answer: "max" / "min" — the
#: returned metric, higher / lower first; "returned" — the order of the returned indices.
MODAL_ORDER: dict[Callable, str] = {
    uncertainty_sampling: "max",
    entropy_sampling: "max",
    margin_sampling: "min",
    uncertainty_batch_sampling: "returned",
}
ORDERS = ("max", "min", "returned")


def modal_scores(
    fn: Callable, model: Any, X_pool: Any, order: str, X_labeled: Any = None,
    y_labeled: Any = None, **fn_kwargs: Any,
) -> np.ndarray:
    """Scores (higher = ask first) that rank the pool as the modAL strategy ``fn`` does.

    ``fn`` is called once with ``n_instances`` = the pool size on a :class:`ModelAsLearner`.
    With ``order="max"`` the score is modAL's metric itself, with ``"min"`` its negative, with
    ``"returned"`` ``n − position`` in the returned index list (positions past its end get 0).
    """
    n = X_pool.shape[0]
    learner = ModelAsLearner(model, X_labeled, y_labeled)
    answer = fn(learner, X_pool, n_instances=n, **fn_kwargs)
    index, values = answer if isinstance(answer, tuple) else (answer, None)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if order == "returned":
        scores = np.zeros(n)
        scores[index] = n - np.arange(index.size)
        return scores
    if values is None:
        raise ValueError(
            f"{getattr(fn, '__name__', fn)!r} returned indices only, so order={order!r} has no "
            "metric to read; use order='returned'"
        )
    if index.size != n:
        raise RuntimeError(
            f"{getattr(fn, '__name__', fn)!r} returned {index.size} of {n} pool items for "
            f"n_instances={n}; order={order!r} needs a metric for every item"
        )
    metric = np.empty(n)
    metric[index] = np.asarray(values, dtype=np.float64).reshape(-1)
    return metric if order == "max" else -metric


def from_modal(
    fn: Callable,
    name: str,
    description: str,
    *,
    order: str | None = None,
    needs: tuple[str, ...] = ("proba", "classification"),
    batch: str = "topk",
    **fn_kwargs: Any,
) -> Strategy:
    """A modAL query strategy as an alloop :class:`~strategies.base.Strategy`.

    Parameters
    ----------
    fn : callable
        A modAL query strategy ``fn(learner, X, n_instances=..., **kw) -> (indices, metric)``.
        It receives a :class:`ModelAsLearner` over alloop's model and labeled data.
    name, description : str
        The strategy's name and one-line description (it is not registered; pass it to
        :func:`strategies.registry.register` to make it available by name).
    order : {"max", "min", "returned"}, optional
        How ``fn`` ranks the pool (see :data:`MODAL_ORDER`); known for
        ``uncertainty_sampling``, ``entropy_sampling``, ``margin_sampling`` and
        ``uncertainty_batch_sampling``, required for any other function.
    needs, batch
        As for :class:`~strategies.base.Strategy`.
    **fn_kwargs
        Passed to ``fn`` on every call (``metric=`` for the batch strategy, say).

    Returns
    -------
    Strategy

    Notes
    -----
    What is preserved: with the default ``batch="topk"``, the k items alloop picks are the k
    items modAL's ``fn`` picks with ``n_instances=k``, for every k (up to ties among equal
    metric values, which modAL breaks arbitrarily and alloop by pool position). For
    ``"max"``/``"min"`` the scores are modAL's metric (negated for ``"min"``); for
    ``"returned"`` they are ranks, which holds because ranked batch sampling chooses greedily,
    so its choice for k is the first k of its choice for the whole pool. That whole-pool
    ranking costs O(n²) distance evaluations for ``uncertainty_batch_sampling``.

    Examples
    --------
    >>> from modAL.uncertainty import margin_sampling
    >>> margin = from_modal(margin_sampling, "modal-margin", "modAL's margin sampling.")
    >>> margin.needs
    ('proba', 'classification')
    """
    base = fn.func if isinstance(fn, functools.partial) else fn
    order = MODAL_ORDER.get(base) if order is None else order
    if order is None:
        raise ValueError(
            f"alloop does not know how {getattr(fn, '__name__', fn)!r} ranks the pool; pass "
            f"order= one of {ORDERS} ('max': higher metric first, 'min': lower metric first, "
            "'returned': the order of the returned indices)"
        )
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")

    def scorer(model: Any, X_pool: Any, *, X_labeled: Any = None, y_labeled: Any = None,
               **_: Any) -> np.ndarray:
        return modal_scores(fn, model, X_pool, order, X_labeled, y_labeled, **fn_kwargs)

    scorer.__name__ = f"modal_{getattr(base, '__name__', 'strategy')}"
    scorer.__doc__ = f"Scores of modAL's {getattr(base, '__name__', fn)!r} ({order} first)."
    return Strategy(name, description, scorer, tuple(needs), batch)
