"""What a loop is built from, checked before anything is stored.

:class:`Setup` takes the collaborators (pool, model, strategy, oracle, store, tracker, data)
and :class:`~alloop.loop.settings.LoopSettings`, fails early on bad input with a message naming
the value and the fix, and holds the helpers every stage shares (the fit stage, the validation
split). :class:`~alloop.loop.core.ActiveLoop` runs the rounds on top of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from alloop.data.pool import Pool, validate_features
from alloop.loop.fit import FitStage, RegularityHook
from alloop.loop.relabel import FVMRelabel, NoRelabel, RelabelPolicy
from alloop.loop.score import Scoring
from alloop.loop.select import CenterDistances
from alloop.loop.settings import LoopSettings
from alloop.loop.validation import check_validation_need, validation_split
from alloop.metrics import check_metrics, default_metric
from alloop.models.base import Model
from alloop.store.label_store import LabelStore
from alloop.tracking.base import NullTracker, Tracker
from oracles.base import Oracle, check_oracle
from strategies.base import Strategy, check_compatible
from strategies.registry import get as get_strategy

#: ``round_report(model, pool) -> (metrics, tables)``: what a round adds to its report
RoundReportHook = Callable[[Any, Pool], tuple[dict[str, float], dict[str, pd.DataFrame]]]
#: a batch rule object: ``rule(scores, k, X_pool=, X_labeled=, rng=) -> positions``
BatchRule = Callable[..., np.ndarray]


def memory_store() -> LabelStore:
    """The store a loop gets when none is passed: in memory, gone with the process."""
    return LabelStore(":memory:")


def as_loop_model(model: Any, strategy: Strategy, classes: Any) -> Any:
    """A scikit-learn estimator or a modAL learner, as a model the loop can use (``as_model``).

    A modAL learner gives its estimator (the loop keeps the labels); a gradient strategy gets
    ``LogisticRegression`` / ``Ridge`` as their GLM.
    """
    import sys

    from alloop.models.sklearn_adapter import as_model

    modal = sys.modules.get("modAL.models.base")  # not imported: it cannot be a modAL learner
    if modal is not None and isinstance(model, modal.BaseLearner):
        model = model.estimator
    model = as_model(model, differentiable="gradients" in strategy.needs,
                     classes=None if classes is None else list(classes))
    if not isinstance(model, Model):
        missing = [name for name in ("task", "classes_", "s", "with_s", "fit", "predict", "clone")
                   if not hasattr(model, name)]
        raise TypeError(
            f"{type(model).__name__} is not an alloop Model: it lacks {', '.join(missing)}. "
            "Implement alloop.models.base.Model (s = None and with_s returning the model where "
            "there is no regularity), or pass a scikit-learn estimator"
        )
    return model


class Setup:
    """The parts of a loop, checked.

    Parameters
    ----------
    pool : Pool
        Candidates (features and stable ids).
    model : Model
        A template (:class:`alloop.models.base.Model`; a scikit-learn estimator is adapted);
        each round fits a clone at the current regularity ``s``.
    strategy : Strategy or str
        A strategy object or a registry name (``alloop strategies`` lists them).
    oracle : Oracle or None
        Answers queries (may answer only some); None when you answer them yourself through
        :meth:`~alloop.loop.core.ActiveLoop.query` and ``teach``.
    settings : LoopSettings
        Rounds, batch size, stop rules, relabelling, label rule, seed (the config's ``loop:``).
    store : LabelStore, optional
        Durable answers (:func:`memory_store` when omitted).
    tracker : Tracker, optional
        E.g. :class:`alloop.tracking.MlflowTracker`.
    X_test, y_test : optional
        Held-out data for the learning curve.
    X_val, y_val : optional
        Validation data for strategies and automatic regularity that need it; when absent and
        needed, a fifth of the labeled items (chosen by id hash) is held out.
    classes : sequence, optional
        The full label set (classification). Answers outside it are rejected.
    scoring : callable, optional
        ``scoring(strategy, model, X_pool, **context) -> scores`` scores the unlabeled pool
        elsewhere (e.g. :class:`alloop.scale.RayScoring`). In-process when omitted.
    regularity : callable, optional
        Chooses ``s`` each round (automatic regularity), see :mod:`alloop.loop.fit`.
    strategy_params : dict, optional
        The strategy's options (``strategy.params`` in a config).
    batch_rule : str, optional
        How a batch is chosen from the scores (``strategy.batch``; default: the strategy's).
    round_report : callable, optional
        ``round_report(model, pool) -> (metrics, tables)``: more metrics and tables for each
        round's report (e.g. :class:`alloop.multiuser.UserReport`: per-user metrics, ``users.csv``).
    run_name, params : optional
        The tracked run's name and parameters.
    """

    def __init__(
        self,
        pool: Pool,
        model: Any,
        strategy: Strategy | str,
        oracle: Oracle | None,
        settings: LoopSettings | None = None,
        *,
        store: LabelStore | None = None,
        tracker: Tracker | None = None,
        X_test: Any = None,
        y_test: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        classes: Sequence[Any] | None = None,
        scoring: Scoring | None = None,
        regularity: RegularityHook | None = None,
        strategy_params: dict[str, Any] | None = None,
        batch_rule: str | BatchRule | None = None,
        round_report: RoundReportHook | None = None,
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        settings = LoopSettings() if settings is None else settings
        if not isinstance(settings, LoopSettings):
            raise TypeError(f"settings must be a LoopSettings; got {type(settings).__name__}")
        self.settings = settings
        self.pool = pool
        self.strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
        model = as_loop_model(model, self.strategy, classes)
        if self.strategy.fresh is not None:  # stateful (the portfolio): one instance per run
            self.strategy = self.strategy.fresh(self.strategy.check_options(strategy_params or {}))
            strategy_params = None
        self.model = model
        check_compatible(self.strategy, model)
        self.oracle = None if oracle is None else check_oracle(oracle)
        self.task = getattr(model, "task", "classification")
        self.classes = None if classes is None else np.asarray(sorted(classes))
        if self.task == "classification" and self.classes is None:
            raise ValueError("classification loops need the full label set: pass classes=[...]")
        self._data(X_test, y_test, X_val, y_val)
        self._check_sizes()
        self.batch_rule = batch_rule or self.strategy.batch
        # the k-center rule's distances to the labeled set, carried across this process's rounds
        self.center_distances = CenterDistances()
        self.round_report = round_report
        # unknown options, bad values and context keys (rng, X_val, ...) fail here, not in round 1
        self.strategy_params = self.strategy.check_options(strategy_params or {})
        self.relabel: RelabelPolicy = (NoRelabel() if settings.relabel is None
                                       else FVMRelabel(settings.relabel.every, settings.relabel.count))
        self.stop_rules = settings.stop_rules()
        self.scoring = scoring
        self.store = store if store is not None else memory_store()
        self.tracker = tracker if tracker is not None else NullTracker()
        self.run_name = run_name or f"{self.strategy.name}-seed{settings.seed}"
        self.params = params or {}
        # unknown names and probability metrics on a model without probabilities fail here
        self.metrics = check_metrics(list(settings.metrics) if settings.metrics else None, model)
        headline = default_metric(self.task)
        self.metric = headline if headline in self.metrics else self.metrics[0]
        target = settings.target
        if target is not None and X_test is not None and target.metric not in self.metrics:
            raise ValueError(
                f"target metric {target.metric!r} is not computed; add it to the metrics "
                f"({', '.join(self.metrics)})"
            )
        self._fit_stage = FitStage(model, self.classes, self.task, regularity)
        if "validation" in self.strategy.needs and self.X_val is None:
            check_validation_need(self.strategy, self._initial_ids_for_check())
        # the round state, rebuilt from the store by run() / query()
        self._restored = False
        self._curve: list[dict[str, Any]] = []
        self._model: Any = None
        self._previous: Any = None
        self._next = 0
        self._run_id: str | None = None
        self._asked: Any = None  # the round query() opened in this process, until teach()

    def _data(self, X_test: Any, y_test: Any, X_val: Any, y_val: Any) -> None:
        self.X_test = None if X_test is None else validate_features(X_test, "X_test")
        self.y_test = None if y_test is None else np.asarray(y_test)
        if self.X_test is not None and (self.y_test is None or len(self.y_test) != self.X_test.shape[0]):
            raise ValueError(
                f"X_test has {self.X_test.shape[0]} rows but y_test has "
                f"{None if self.y_test is None else len(self.y_test)} labels"
            )
        self.X_val = None if X_val is None else validate_features(X_val, "X_val")
        self.y_val = None if y_val is None else np.asarray(y_val)

    def _check_sizes(self) -> None:
        n, initial, batch_size = len(self.pool), self.settings.initial, self.settings.batch_size
        if isinstance(initial, tuple):
            self.pool.index_of(list(initial))  # unknown ids raise here, naming them
        elif not 1 <= self.settings.initial_size <= n:
            raise ValueError(
                f"initial = {self.settings.initial_size} must be between 1 and the pool size {n}"
            )
        if batch_size > n:
            raise ValueError(
                f"batch_size = {batch_size} is larger than the pool ({n} items); lower batch_size"
            )

    def _initial_ids_for_check(self) -> list[str]:
        """Round 0's items as a random draw would pick them (the hold-out check before round 0)."""
        if isinstance(self.settings.initial, tuple):
            return list(self.settings.initial)
        from alloop.loop.validation import INITIAL, rng

        order = rng(self.settings.seed, 0, INITIAL).permutation(len(self.pool))[: self.settings.initial_size]
        return self.pool.ids[order].tolist()

    # ----------------------------------------------------------------- shared by the stages
    def fit(self, search: bool = True) -> Any:
        """A model fitted on the pool's current labels, as the loop fits it each round.

        With automatic regularity and ``search=True`` the regularity is searched on the
        validation split first; otherwise the model is fitted at the current ``s``.
        """
        X, y = self.pool.labeled_data()
        return self._fit_stage.fit(X, y, self._validation() if search else None)

    def _validation(self) -> tuple[Any, Any, np.ndarray]:
        """(X_val, y_val, training mask over labeled items)."""
        return validation_split(self.pool, self.X_val, self.y_val, self.task)

    def _eval_features(self) -> Any:
        return self.X_test if self.X_test is not None else self.pool.X

    @contextmanager
    def _lease(self) -> Iterator[None]:
        self.store.take_lease()
        try:
            yield
        finally:
            self.store.release_lease()
