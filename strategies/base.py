"""A strategy is a small scoring function, usable in alloop's loop and as a modAL strategy.

``score(model, X_pool, **context) -> np.ndarray`` returns one finite float per pool row;
higher means "ask first". ``context`` may hold the :data:`CONTEXT_KEYS` -- ``X_labeled``,
``y_labeled``, ``X_val``, ``y_val``, ``rng`` (a ``numpy.random.Generator``), ``y_pool`` and
``n_instances`` (the number of items the round picks, for strategies that choose a batch
jointly) --; a scorer takes what it needs and ignores the rest through ``**_``.

A strategy's *options* (``strategy.params`` in a config) are declared as a pydantic model
(:attr:`Strategy.options`, ``extra="forbid"``). :meth:`Strategy.score` splits its keyword
arguments into context keys and options and validates the options, so a misspelt name or a bad
value raises :class:`StrategyOptionsError` naming the strategy, the option, the value and the
valid names, instead of being swallowed by the scorer's ``**_``. The scorer is called as
``scorer(model, X_pool, **context, **validated_options)``, every option present (defaults
filled in), so the options model is the one place a default lives.

A strategy whose score of a row depends on nothing but that row and per-round state may also
be split in two: ``prepare(model, **context) -> state`` (the per-round work: a tangent, a
direction, the model itself) and a pure ``score_rows(state, X_rows) -> scores`` such that
``scorer(model, X, **context)`` equals ``score_rows(prepare(model, **context), X)`` exactly.
The split lets a pool be scored in shards elsewhere (:class:`alloop.scale.RayScoring`) with the
state shipped once per round. Pool-dependent strategies (coreset, a committee trained on the
pool) have no such split: their score of a row depends on the other rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

Scorer = Callable[..., np.ndarray]

#: ``prepare(model, **context) -> state``: the per-round part of a row-wise strategy.
Prepare = Callable[..., Any]
#: ``score_rows(state, X_rows) -> scores``: pure and picklable, one score per row.
ScoreRows = Callable[[Any, Any], np.ndarray]

#: Capabilities a scorer may require of the model.
NEEDS = ("proba", "gradients", "labeled", "validation", "regression", "classification")

#: The keyword arguments a caller supplies as data, never as options: the loop passes the
#: labeled set, the validation split and the round's generator; ``y_pool`` (one label per pool
#: row, for the "labeled" variants) comes from Python callers. An options model may not
#: declare a field of these names, and ``strategy.params`` cannot set them.
CONTEXT_KEYS = ("X_labeled", "y_labeled", "X_val", "y_val", "rng", "y_pool", "n_instances")


class StrategyMemory(Protocol):
    """What a stateful strategy (the portfolio) carries from one round's selection to the next.

    The loop saves :meth:`state` in the label store after each round's scores, before that
    round's requests, and calls :meth:`restore` before the next scores, so a resumed run (or a
    new process on the same store) continues from exactly the state an uninterrupted run has.
    """

    def state(self) -> dict[str, Any]:
        """The state after the last scores, as JSON (floats round-trip exactly)."""
        ...

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from ``state`` (a :meth:`state` result); None: the state of a fresh run."""
        ...


class StrategyOptionsError(ValueError):
    """A strategy option that is unknown, has a bad value, or names a context key."""


class StrategyOptions(BaseModel):
    """Base of the strategies' options models: unknown names are refused, values checked.

    Examples
    --------
    >>> from typing import Literal
    >>> class MarginOptions(StrategyOptions):
    ...     scale: Literal["raw", "log"] = "raw"
    >>> MarginOptions(scale="log").scale
    'log'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def _option_problem(strategy: str, error: dict[str, Any], valid: str) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        return (f"strategy {strategy!r}: unknown option {where!r} (got {error.get('input')!r}); "
                f"valid options: {valid}")
    message = error["msg"].removeprefix("Value error, ")
    return f"strategy {strategy!r}: option {where}: {message} (got {error.get('input')!r}); " \
        f"valid options: {valid}"


def validate_options(
    name: str, options: type[BaseModel] | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """``params`` checked against a strategy's options model; every option, defaults filled.

    Raises :class:`StrategyOptionsError` naming the strategy, the option, the bad value and
    the valid names: for an unknown option, a bad value, a context key (:data:`CONTEXT_KEYS`)
    or any option at all when ``options`` is None.
    """
    params = dict(params)
    valid = ", ".join(options.model_fields) if options is not None else "(none)"
    context = [k for k in params if k in CONTEXT_KEYS]
    if context:
        raise StrategyOptionsError(
            f"strategy {name!r}: {', '.join(map(repr, context))} cannot be set as an option: "
            f"the loop supplies it (context keys: {', '.join(CONTEXT_KEYS)}); valid options: "
            f"{valid}"
        )
    if options is None:
        if params:
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise StrategyOptionsError(
                f"strategy {name!r} takes no options (got {shown}); remove strategy.params"
            )
        return {}
    try:
        return dict(options.model_validate(params))
    except ValidationError as exc:
        problems = [_option_problem(name, e, valid) for e in exc.errors()]
        raise StrategyOptionsError("; ".join(problems)) from None


@dataclass(frozen=True)
class Strategy:
    """A named scorer plus the batch rule it prefers.

    It is a modAL ``query_strategy`` through :mod:`alloop.interop`: ``ActiveLearner`` takes it
    as it is, modAL's own learner through ``alloop.interop.as_query_strategy(strategy)``.
    """

    name: str
    description: str
    scorer: Scorer
    needs: tuple[str, ...] = ()
    #: default batch rule: "topk", "diverse" (clustered top candidates) or "kcenter".
    batch: str = "topk"
    #: the per-round half of a row-wise split (None: the strategy has no split).
    prepare: Prepare | None = None
    #: the per-row half of a row-wise split: ``score_rows(prepare(model, **ctx), X)``.
    score_rows: ScoreRows | None = None
    #: the options model (a pydantic ``BaseModel`` with ``extra="forbid"``); None: no options.
    options: type[BaseModel] | None = None
    #: per-round values the loop logs with the round's metrics (e.g. a portfolio's arm choice).
    report: Callable[[], dict[str, float]] | None = None
    #: a stateful strategy's factory: the loop builds one instance per run from the validated
    #: options (``fresh(options) -> Strategy``); None for the stateless scorers.
    fresh: Callable[[dict[str, Any]], Strategy] | None = None
    #: a stateful strategy's state across rounds, which the loop keeps in the label store
    #: (None for the stateless scorers).
    memory: StrategyMemory | None = None
    #: the scores are each pool row's Euclidean distance to its nearest labeled row (the
    #: core-set), so the k-center batch rule starts from them instead of computing them again
    #: (:meth:`labeled_distance`).
    scores_are_labeled_distance: bool = False

    def check_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The validated options: every declared option, ``params`` over the defaults.

        Raises
        ------
        StrategyOptionsError
            For an unknown option, a bad value or a context key, naming the strategy, the
            option, the bad value and the valid option names.

        Examples
        --------
        >>> import strategies
        >>> strategies.get("sld").check_options({"tangent_method": "cg"})["tangent_method"]
        'cg'
        >>> strategies.get("sld").check_options({"tangent_metod": "cg"})
        Traceback (most recent call last):
        ...
        strategies.base.StrategyOptionsError: strategy 'sld': unknown option 'tangent_metod' (got 'cg'); valid options: variant, tangent_method, damping, batch_size
        """
        return validate_options(self.name, self.options, params)

    def arguments(self, **kwargs: Any) -> dict[str, Any]:
        """The keyword arguments the scorer (or ``prepare``) gets for a call with ``kwargs``.

        Context keys pass through unchanged; everything else is validated as options
        (:meth:`check_options`), defaults filled in. Validated options validate again to
        themselves, so a caller may pass the result of :meth:`check_options` on.
        """
        context = {k: v for k, v in kwargs.items() if k in CONTEXT_KEYS}
        params = {k: v for k, v in kwargs.items() if k not in CONTEXT_KEYS}
        return {**context, **self.check_options(params)}

    def prepare_state(self, model: Any, **kwargs: Any) -> Any:
        """``prepare(model, **arguments)``: the per-round state, options validated."""
        if self.prepare is None:
            raise ValueError(f"strategy {self.name!r} has no row-wise split (prepare/score_rows)")
        return self.prepare(model, **self.arguments(**kwargs))

    def labeled_distance(self, scores: np.ndarray, X_labeled: Any) -> np.ndarray | None:
        """``scores`` when they are the pool's distances to ``X_labeled``, for the k-center rule
        (``select_batch(..., center_distance=)``); None when the strategy does not declare so
        (:attr:`scores_are_labeled_distance`) or nothing is labeled.

        ``X_labeled`` must be the labeled set the scores were computed with. The k-center
        picks do not depend on the result: it only spares the rule a pass over the pool.

        Examples
        --------
        >>> import numpy as np
        >>> import strategies
        >>> X, L = np.array([[0.0, 3.0], [1.0, 0.0]]), np.array([[0.0, -1.0]])
        >>> coreset = strategies.get("coreset")
        >>> coreset.labeled_distance(coreset.score(None, X, X_labeled=L), L).tolist()
        [4.0, 1.4142135623730951]
        >>> print(strategies.get("random").labeled_distance(np.zeros(2), L))
        None
        """
        if not self.scores_are_labeled_distance or X_labeled is None or X_labeled.shape[0] == 0:
            return None
        return scores

    @property
    def row_wise(self) -> bool:
        """Whether the scores can be computed shard by shard from :attr:`prepare`'s state."""
        return self.prepare is not None and self.score_rows is not None

    def score(self, model: Any, X_pool: Any, **context: Any) -> np.ndarray:
        """Scores for every row of ``X_pool`` (higher = ask first)."""
        arguments = self.arguments(**context)  # bad options fail before any work
        n = X_pool.shape[0]
        if n == 0:
            raise ValueError("the pool is empty: there is nothing left to score")
        return self.check_scores(self.scorer(model, X_pool, **arguments), n)

    def check_scores(self, scores: Any, n: int) -> np.ndarray:
        """``scores`` as a float64 vector of ``n`` finite values, or a clear error.

        :meth:`score` applies it to the scorer's result; a backend that assembles the scores
        of shards applies it to the whole, so both fail alike.
        """
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape[0] != n:
            raise RuntimeError(
                f"strategy {self.name!r} returned {scores.shape[0]} scores for {n} pool items"
            )
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(
                f"strategy {self.name!r} produced {int((~np.isfinite(scores)).sum())} non-finite "
                "scores; the model may be ill-conditioned (try a larger regularization s)"
            )
        return scores

    def __call__(self, learner: Any, *args: Any, **kwargs: Any) -> NoReturn:
        """Called the modAL way, ``strategy(learner, X_pool, n_instances)``: say which call to use.

        Querying (scoring, then choosing the batch) is the engine's and modAL's side, above the
        strategies, so the object itself only scores; the error names the two ways to query.
        """
        learner_like = hasattr(learner, "estimator") and hasattr(learner, "X_training")
        what = (
            "modAL's own learner, which calls it directly" if learner_like
            else f"a {type(learner).__name__}, which is not a modAL learner. For scores of a model "
            f"use strategies.get({self.name!r}).score(model, X_pool, X_labeled=..., y_labeled=...)"
        )
        raise TypeError(
            f"strategy {self.name!r} was called the modAL way, strategy(learner, X_pool, "
            f"n_instances), with {what}; to query with modAL give it to "
            "alloop.interop.ActiveLearner(estimator, query_strategy=strategy, X_training=..., "
            "y_training=...).query(X_pool), or give modAL's learner "
            "query_strategy=alloop.interop.as_query_strategy(strategy)"
        )


class NotRowWise(ValueError):
    """Raised by a ``prepare`` whose options make a row's score depend on more than the row.

    E.g. the labeled variant of SLD scores each row at its observed label ``y_pool``, a
    pool-aligned array that a per-round state cannot carry. Backends that shard the pool catch
    it and score on the driver instead.
    """


def check_compatible(strategy: Strategy, model: Any) -> None:
    """Raise a clear error if ``model`` lacks what ``strategy`` needs.

    The message names the strategy, the missing capability and the models that have it.
    """
    from alloop.models.base import DifferentiableModel, NotDifferentiableError

    task = getattr(model, "task", None)
    if "classification" in strategy.needs and task != "classification":
        raise ValueError(
            f"strategy {strategy.name!r} needs a classifier; the model is a {task} model. "
            "For regression use 'random', 'max-std', 'egl', 'coreset' or a tangent strategy."
        )
    if "regression" in strategy.needs and task != "regression":
        raise ValueError(f"strategy {strategy.name!r} is for regression models; got a {task} model")
    if "proba" in strategy.needs and not hasattr(model, "predict_proba"):
        raise ValueError(f"strategy {strategy.name!r} needs predict_proba; {model!r} has none")
    from alloop.models.capabilities import scores_itself

    if (
        "gradients" in strategy.needs and not isinstance(model, DifferentiableModel)
        and not scores_itself(model, strategy.name)  # e.g. the hierarchical model's sld/sti/ssi
    ):
        raise NotDifferentiableError(
            f"strategy {strategy.name!r} needs gradients of a differentiable model; "
            f"{type(getattr(model, 'estimator', model)).__name__} is not one. Supported: alloop's "
            "GLMs (linear, logistic, softmax) and torch MLPs, and scikit-learn LogisticRegression "
            "(l2) and Ridge through their GLM mapping."
        )
