"""Automatic (s_0, s_1) for the hierarchical model from a validation split, by hypergradients.

Validation rows belong to users too; with θ*(s) the fit at s = (s_0, s_1),

    V(s) = Σ_{j∈Val} ℓ(z_j; θ*_{u_j}(s)),    ∂V/∂s_k = Σ_j g_j·dθ_{u_j}/ds_k,

where g_j = x̃_j ⊗ ∂ℓ/∂f_j and dθ_u/ds_k are the block tangents (:mod:`.tangent`). A validation
row of a user without training data is scored with θ_0 and its tangent, since θ_u = θ_0 there.
:func:`select_hyperparameters` minimises V over a box with L-BFGS-B on these gradients; every
evaluation is one warm-started block-Newton refit plus the two tangents (one shared
factorization), so choosing (s_0, s_1) costs a handful of fits, linear in the number of users.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize
import torch

from alloop.models import likelihoods as lk
from alloop.multiuser.outputs import per_user_outputs_many

if TYPE_CHECKING:
    from alloop.multiuser.model import HierarchicalGLM

__all__ = ["HyperparameterSelection", "select_hyperparameters", "validation_hypergradient"]


def _validation_tensors(
    model: HierarchicalGLM, X_val: Any, y_val: Any, users_val: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if X_val is None or y_val is None or users_val is None:
        raise ValueError("a validation split is required: X_val, y_val and users_val")
    design = model.design(X_val)
    if design.shape[0] == 0:
        raise ValueError("the validation split is empty")
    y = y_val.numpy() if isinstance(y_val, torch.Tensor) else np.asarray(y_val)
    if len(y) != design.shape[0]:
        raise ValueError(f"X_val has {design.shape[0]} rows but y_val has {len(y)} labels")
    users = model.user_index(users_val, design.shape[0], model.n_users_)
    return design, model.encode_y(y), users


def _value_and_gradient(
    model: HierarchicalGLM, design: torch.Tensor, y: torch.Tensor, users: torch.Tensor
) -> tuple[float, np.ndarray]:
    tangents = model.tangents()
    f, f_s0, f_s1 = per_user_outputs_many(
        design, [model.thetas_, tangents.users[0], tangents.users[1]], users
    )
    r = lk.dnll_df(model.likelihood, f, y, model.sigma2)
    value = float(lk.nll(model.likelihood, f, y, model.sigma2).sum())
    grad = np.array([float((r * f_s0).sum()), float((r * f_s1).sum())])
    return value, grad


def validation_hypergradient(
    model: HierarchicalGLM, X_val: Any, y_val: Any, users_val: Any
) -> tuple[float, np.ndarray]:
    """(V, ∇_s V) at the model's fit: V = Σ_j ℓ(z_j; θ_{u_j}), ∇_s V = (∂V/∂s_0, ∂V/∂s_1).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 2)); u = np.arange(40) % 4
    >>> y = X[:, 0] + 0.5 * u + rng.normal(size=40)
    >>> model = HierarchicalGLM().fit_users(X[:30], y[:30], u[:30])
    >>> value, grad = validation_hypergradient(model, X[30:], y[30:], u[30:])
    >>> grad.shape
    (2,)
    """
    model._check_fitted()
    return _value_and_gradient(model, *_validation_tensors(model, X_val, y_val, users_val))


@dataclass(frozen=True)
class HyperparameterSelection:
    """What :func:`select_hyperparameters` found.

    Attributes
    ----------
    s0, s1 : float
        The selected hyperparameters.
    value : float
        V at (s0, s1) (summed validation loss).
    gradient : tuple of float
        (∂V/∂s_0, ∂V/∂s_1) there.
    iterations : int
        Fits evaluated.
    converged : bool
        L-BFGS-B reported success.
    at_bound : tuple of bool
        Whether s0, s1 sit on a bound of the search box.
    history : tuple of (s0, s1, V, ∂V/∂s_0, ∂V/∂s_1)
        Every evaluation in order: the (s_0, s_1) path.
    """

    s0: float
    s1: float
    value: float
    gradient: tuple[float, float]
    iterations: int
    converged: bool
    at_bound: tuple[bool, bool]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    history: tuple[tuple[float, float, float, float, float], ...] = field(repr=False, default=())

    def as_dict(self) -> dict[str, float | int | bool]:
        """Flat scalars for MLflow or a table."""
        return {
            "s0": self.s0,
            "s1": self.s1,
            "validation_loss": self.value,
            "dV_ds0": self.gradient[0],
            "dV_ds1": self.gradient[1],
            "iterations": self.iterations,
            "converged": self.converged,
        }


def _check_bounds(bounds: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        (a, b), (c, d) = bounds
        out = ((float(a), float(b)), (float(c), float(d)))
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((lo0, hi0), (lo1, hi1)); got {bounds!r}") from None
    for lo, hi in out:
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"each bound must be finite with lo < hi; got {bounds!r}")
    return out


def select_hyperparameters(
    model: HierarchicalGLM,
    X_val: Any,
    y_val: Any,
    users_val: Any,
    *,
    s_init: tuple[float, float] | None = None,
    bounds: Any = ((-10.0, 10.0), (-10.0, 10.0)),
    max_iter: int = 30,
    gtol: float = 1e-7,
    max_step: float = 2.0,
    max_moves: int = 20,
) -> tuple[HierarchicalGLM, HyperparameterSelection]:
    """Choose (s_0, s_1) by minimising the validation loss with its hypergradient.

    Parameters
    ----------
    model : HierarchicalGLM
        Fitted on the training data; refits reuse its data and start from its parameters.
    X_val, y_val, users_val
        Validation rows, their labels and users.
    s_init : (float, float), optional
        Starting point (clipped to ``bounds``); defaults to the model's (s0, s1) — in a loop,
        last round's choice, so the search starts next to the answer.
    bounds : ((lo0, hi0), (lo1, hi1))
        Search box for s_0 and s_1.
    max_iter : int
        L-BFGS-B iterations at most per trust box (each takes one or a few fits).
    gtol : float
        Stop when the projected gradient of the *mean* validation loss is below this. V is
        often nearly flat in s_0 far below its minimum (the pooled data determine θ_0 and λ_0
        hardly matters there); a loose tolerance can stop on that plateau.
    max_step : float
        Half-width of the trust box each L-BFGS-B run is confined to; the box moves with the
        answer while that lands on its edge (at most ``max_moves`` times).

    Returns
    -------
    fitted : HierarchicalGLM
        Fitted at the selected (s0, s1).
    info : HyperparameterSelection

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> rng = np.random.default_rng(1); X = rng.normal(size=(200, 3)); u = np.arange(200) % 10
    >>> offsets = rng.normal(size=10); y = X @ [1.0, 0.0, -1.0] + offsets[u] + rng.normal(size=200)
    >>> model = HierarchicalGLM().fit_users(X[:150], y[:150], u[:150])
    >>> fitted, info = select_hyperparameters(model, X[150:], y[150:], u[150:])
    >>> info.converged and (fitted.s0, fitted.s1) == (info.s0, info.s1)
    True
    """
    model._check_fitted()
    box = _check_bounds(bounds)
    if max_iter < 1 or max_moves < 1 or not max_step > 0:
        raise ValueError(
            "need max_iter >= 1, max_moves >= 1 and max_step > 0; got "
            f"{max_iter!r}, {max_moves!r}, {max_step!r}"
        )
    design, y, users = _validation_tensors(model, X_val, y_val, users_val)
    n_val = design.shape[0]
    start = np.array(s_init if s_init is not None else (model.s0, model.s1), dtype=np.float64)
    if start.shape != (2,) or not np.isfinite(start).all():
        raise ValueError(f"s_init must be two finite numbers; got {s_init!r}")
    start = np.clip(start, [box[0][0], box[1][0]], [box[0][1], box[1][1]])

    current = {"model": model}
    cache: dict[tuple[float, float], tuple[float, np.ndarray, HierarchicalGLM]] = {}
    history: list[tuple[float, float, float, float, float]] = []

    def evaluate(s: np.ndarray) -> tuple[float, np.ndarray]:
        key = (float(s[0]), float(s[1]))
        if key not in cache:
            fitted = current["model"].refit(*key)  # warm start from the last evaluation
            current["model"] = fitted
            value, grad = _value_and_gradient(fitted, design, y, users)
            cache[key] = (value, grad, fitted)
            history.append((*key, value, float(grad[0]), float(grad[1])))
        value, grad, _ = cache[key]
        return value / n_val, grad / n_val

    # L-BFGS-B inside a trust box of half-width ``max_step`` around the current point,
    # re-centred while the answer lands on the box's edge: no single leap into the plateaus
    # where V is flat (and its gradient too small to lead back).
    center, result = start, None
    for _ in range(max_moves):
        local = tuple(
            (max(lo, c - max_step), min(hi, c + max_step)) for (lo, hi), c in zip(box, center)
        )
        result = scipy.optimize.minimize(
            evaluate,
            center,
            jac=True,
            method="L-BFGS-B",
            bounds=local,
            options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-12},
        )
        inner_edge = any(
            (np.isclose(x, a) and a > lo) or (np.isclose(x, b) and b < hi)
            for x, (a, b), (lo, hi) in zip(result.x, local, box)
        )
        if not inner_edge:
            break
        center = result.x
    if not result.success:
        warnings.warn(
            f"select_hyperparameters: L-BFGS-B stopped without converging ({result.message}); "
            f"last (s0, s1) = ({result.x[0]:.4g}, {result.x[1]:.4g})",
            RuntimeWarning,
            stacklevel=2,
        )
    best_key = min(cache, key=lambda k: cache[k][0])
    value, grad, fitted = cache[best_key]
    at_bound = tuple(
        bool(np.isclose(best_key[i], box[i][0]) or np.isclose(best_key[i], box[i][1]))
        for i in range(2)
    )
    info = HyperparameterSelection(
        s0=best_key[0],
        s1=best_key[1],
        value=value,
        gradient=(float(grad[0]), float(grad[1])),
        iterations=len(history),
        converged=bool(result.success),
        at_bound=at_bound,  # type: ignore[arg-type]
        bounds=box,
        history=tuple(history),
    )
    return fitted, info
