"""Automatic regularity as a loop hook: choose s* on the validation split every round.

:class:`alloop.loop.ActiveLoop` takes ``regularity=hook`` with the signature

    hook(model, X, y, X_val, y_val, s0=None, **fit_kwargs) -> (fitted_model, s_star)

where ``model`` is the loop's (unfitted) template, ``(X, y)`` the labeled training rows,
``(X_val, y_val)`` the validation split and ``s0`` last round's s* (a warm start). The loop logs
the model's s each round. :class:`AutoRegularity` is that hook over
:func:`alloop.regularity.select_regularity`; ``loop_hook`` is one with the default settings
(what ``model.auto_regularity: true`` in a config uses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alloop.models.base import DifferentiableModel
from alloop.regularity.search import RegularitySelection, select_regularity

__all__ = ["AutoRegularity", "fit_selected", "loop_hook"]


@dataclass(frozen=True)
class AutoRegularity:
    """Loop hook choosing s* = argmin_s V(s) by its hypergradient (see :func:`select_regularity`).

    Parameters
    ----------
    bounds : (float, float)
        Search interval for s = log λ. Give SSI the same interval (its ``s_bounds``) so it
        knows when s* sits at a bound.
    tangent_method : str
        Solver of θ̇ for V'(s) = g_V·θ̇ ("exact" or "cg" for GLMs).
    damping : float
        Added to H in the tangent solves.
    xtol : float
        Stop when a step in s is shorter than this.
    max_iter : int
        Fits per selection at most.
    on_select : callable, optional
        Called with each :class:`RegularitySelection` (e.g. to collect the search histories).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LinearGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(60, 5))
    >>> y = X @ rng.normal(size=5) + 2.0 * rng.normal(size=60)
    >>> hook = AutoRegularity(bounds=(-8.0, 8.0))
    >>> model, s = hook(LinearGLM(), X[:40], y[:40], X[40:], y[40:], s0=0.0)
    >>> model.s == s and -8.0 <= s <= 8.0
    True
    """

    bounds: tuple[float, float] = (-10.0, 10.0)
    tangent_method: str = "exact"
    damping: float = 0.0
    xtol: float = 1e-4
    max_iter: int = 40
    on_select: Callable[[RegularitySelection], Any] | None = None

    def __call__(
        self,
        model: DifferentiableModel,
        X: Any,
        y: Any,
        X_val: Any,
        y_val: Any,
        s0: float | None = None,
        **fit_kwargs: Any,
    ) -> tuple[DifferentiableModel, float]:
        """Fit ``model`` at the s* that minimises the validation loss; return (model, s*)."""
        s_star, fitted, info = select_regularity(
            model,
            X,
            y,
            X_val,
            y_val,
            s0=s0,
            bounds=self.bounds,
            tangent_method=self.tangent_method,
            damping=self.damping,
            xtol=self.xtol,
            max_iter=self.max_iter,
            **fit_kwargs,
        )
        if self.on_select is not None:
            self.on_select(info)
        return fitted, s_star


def fit_selected(
    template: Any, selected: Any, s: float, X: Any, y: Any, **fit_kwargs: Any
) -> Any:
    """``template`` fitted on (X, y) at the regularity a hook selected (``selected``, at ``s``).

    What the loop does after the hook: refit on every labeled item. For a differentiable
    template that is :meth:`~alloop.models.base.DifferentiableModel.fit_like` (the same s, or
    for a Gaussian model with estimated σ² the same κ = e^s σ²); otherwise ``with_s(s)``.
    """
    if isinstance(template, DifferentiableModel) and isinstance(selected, DifferentiableModel):
        return template.fit_like(selected, X, y, **fit_kwargs)
    return template.with_s(s).clone().fit(X, y, **fit_kwargs)


#: The hook with default settings, for ``ActiveLoop(..., regularity=loop_hook)``.
loop_hook = AutoRegularity()
