"""Strategies by name. Modules register theirs on import with :func:`strategy`."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from strategies.base import CONTEXT_KEYS, NEEDS, Prepare, Scorer, ScoreRows, Strategy

_REGISTRY: dict[str, Strategy] = {}


def register(item: Strategy) -> Strategy:
    """Add a strategy; a name may be registered once."""
    if item.name in _REGISTRY and _REGISTRY[item.name].scorer is not item.scorer:
        raise ValueError(f"a strategy named {item.name!r} is already registered")
    if (item.prepare is None) != (item.score_rows is None):
        raise ValueError(
            f"strategy {item.name!r}: a row-wise split needs both prepare and score_rows"
        )
    unknown = set(item.needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"strategy {item.name!r} needs unknown capabilities {sorted(unknown)}")
    check_options_model(item.name, item.options)
    _REGISTRY[item.name] = item
    return item


def check_options_model(name: str, options: type[BaseModel] | None) -> None:
    """Raise unless ``options`` is None or a pydantic model that refuses unknown names and
    declares no context key (:data:`strategies.base.CONTEXT_KEYS`)."""
    if options is None:
        return
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise TypeError(
            f"strategy {name!r}: options must be a pydantic BaseModel subclass (e.g. a "
            f"strategies.base.StrategyOptions); got {options!r}"
        )
    if options.model_config.get("extra") != "forbid":
        raise ValueError(
            f"strategy {name!r}: options model {options.__name__} must set "
            "model_config = ConfigDict(extra='forbid') so misspelt options are refused"
        )
    clash = sorted(set(options.model_fields) & set(CONTEXT_KEYS))
    if clash:
        raise ValueError(
            f"strategy {name!r}: options {clash} are context keys the loop supplies; rename them"
        )


def strategy(
    name: str,
    description: str,
    *,
    needs: tuple[str, ...] = (),
    batch: str = "topk",
    options: type[BaseModel] | None = None,
    prepare: Prepare | None = None,
    score_rows: ScoreRows | None = None,
    scores_are_labeled_distance: bool = False,
) -> Callable[[Scorer], Strategy]:
    """Decorator: turn a scorer function into a registered :class:`Strategy`.

    ``options`` is the strategy's options model (a :class:`strategies.base.StrategyOptions`
    subclass: its fields and defaults are the options; None: no options). ``prepare`` and
    ``score_rows`` (both or neither) declare the strategy's row-wise split (see
    :mod:`strategies.base`); the scorer must equal ``score_rows(prepare(model, **ctx), X)``.
    ``scores_are_labeled_distance`` declares that the scores are each pool row's distance to
    its nearest labeled row, which the k-center batch rule then reuses (the core-set).

    Examples
    --------
    >>> import numpy as np
    >>> @strategy("doc-example", "Scores every item by its first feature.")
    ... def first_feature(model, X_pool, **_):
    ...     return np.asarray(X_pool)[:, 0]
    >>> get("doc-example").score(None, np.array([[2.0], [5.0]])).tolist()
    [2.0, 5.0]
    """

    def wrap(fn: Scorer) -> Strategy:
        return register(
            Strategy(name, description, fn, tuple(needs), batch, prepare, score_rows, options,
                     scores_are_labeled_distance=scores_are_labeled_distance)
        )

    return wrap


def get(name: str) -> Strategy:
    """The strategy registered as ``name``; the error lists every valid name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown strategy {name!r}; valid names: {', '.join(sorted(_REGISTRY))}"
        ) from None


def available() -> dict[str, str]:
    """name → one-line description, sorted by name."""
    return {k: _REGISTRY[k].description for k in sorted(_REGISTRY)}
