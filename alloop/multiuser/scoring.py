"""The ``sld``, ``sti`` and ``ssi`` strategies over the hierarchical model: pair rows → the math.

The strategies of :mod:`strategies.regularity` call
:meth:`alloop.multiuser.HierarchicalGLM.regularity_scores` with their options; this splits the
pair rows into item features and users and calls the multi-user formulas
(:func:`~alloop.multiuser.sld_scores`, :func:`~alloop.multiuser.sti_scores`,
:func:`~alloop.multiuser.ssi_scores`), which use the exact block tangents.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from alloop.multiuser.pool import split_pairs
from alloop.multiuser.queries import BATCH_SIZE, sld_scores, sti_scores
from alloop.multiuser.ssi import ssi_scores
from alloop.multiuser.tangent import HYPERPARAMETERS

__all__ = ["regularity_scores"]

#: options of the single-s strategies whose only value here is the exact block solve
_EXACT_ONLY = {
    "tangent_method": ("exact",), "solve_method": (None, "exact"),
    "curvature_method": ("exact",), "damping": (0.0, 0),
}


def _check_exact(name: str, options: dict[str, Any]) -> None:
    for key, allowed in _EXACT_ONLY.items():
        if key in options and options[key] not in allowed:
            raise ValueError(
                f"{name} over a hierarchical model uses exact block solves: {key}="
                f"{options[key]!r} is not available; leave {key} at {allowed[0]!r}"
            )


def _bounds(s_bounds: Any) -> Any:
    """SSI's search box: one (lo, hi) for both hyperparameters, or one per hyperparameter."""
    if s_bounds is None:
        return None
    box = np.asarray(s_bounds, dtype=np.float64)
    if box.shape == (2,):
        return (tuple(box.tolist()), tuple(box.tolist()))
    if box.shape == (2, 2):
        return tuple(tuple(row) for row in box.tolist())
    raise ValueError(f"s_bounds must be (lo, hi) or ((lo0, hi0), (lo1, hi1)); got {s_bounds!r}")


def regularity_scores(
    model: Any,
    name: str,
    X: Any,
    *,
    X_val: Any = None,
    y_val: Any = None,
    variant: str = "unlabeled",
    y_pool: Any = None,
    hyperparameters: Any = None,
    batch_size: int = BATCH_SIZE,
    s_bounds: Any = (-10.0, 10.0),
    fd_step: float = 1e-3,
    curvature_floor: float | None = None,
    third_order: bool = True,
    solve_options: Any = None,
    **options: Any,
) -> np.ndarray:
    """SLD / STI / SSI of pair rows ``X`` under a fitted hierarchical model.

    Parameters
    ----------
    model : HierarchicalGLM
        Fitted (at the selected (s_0, s_1) for SSI).
    name : {"sld", "sti", "ssi"}
    X : array-like, shape (n, 1 + d)
        Candidate pair rows ``[user, x...]``.
    X_val, y_val
        The validation split as pair rows (SSI).
    variant, y_pool
        "labeled" scores each row at its label ``y_pool``.
    hyperparameters : "s0", "s1" or both (default)
    batch_size, s_bounds, fd_step, curvature_floor, third_order
        As the strategies' options; ``s_bounds`` is the (s_0, s_1) search box of SSI.
    **options
        ``tangent_method``, ``solve_method``, ``curvature_method``, ``damping``: only their
        exact defaults (the block solves are exact).

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> from alloop.multiuser.pool import pair_rows
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(30, 2)); u = np.arange(30) % 3
    >>> model = HierarchicalGLM(n_users=4).fit(pair_rows(X, u), X[:, 0] + u)
    >>> regularity_scores(model, "sld", pair_rows(X[:4], [0, 1, 2, 3])).shape
    (4,)
    """
    _check_exact(name, options)
    if variant not in ("unlabeled", "labeled"):
        raise ValueError(f"{name}: unknown variant {variant!r}; expected 'unlabeled' or 'labeled'")
    if variant == "labeled" and y_pool is None:
        raise ValueError(f"{name}: the labeled variant needs y_pool (one label per row)")
    y = y_pool if variant == "labeled" else None
    hyper = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    features, users = split_pairs(X)
    if name == "sld":
        return sld_scores(model, features, users, y, hyperparameters=hyper, batch_size=batch_size)
    if name == "sti":
        return sti_scores(model, features, users, y, hyperparameters=hyper, batch_size=batch_size)
    if name != "ssi":
        raise ValueError(f"no multi-user scores for strategy {name!r}; use sld, sti or ssi")
    if X_val is None or y_val is None:
        raise ValueError("ssi needs the validation split (X_val, y_val) as pair rows")
    val_features, val_users = split_pairs(X_val)
    with warnings.catch_warnings():  # at a search bound SSI floors ∇²V; still a ranking
        warnings.simplefilter("ignore", RuntimeWarning)
        return ssi_scores(
            model, features, users, val_features, np.asarray(y_val), val_users, y,
            batch_size=batch_size, hyperparameters=hyper, bounds=_bounds(s_bounds),
            fd_step=fd_step, curvature_floor=curvature_floor, third_order=third_order,
        )
