"""Regularity-tangent query strategies: SLD, STI and SSI (docs/math.md §4).

* ``sld`` — squared loss derivative E_y[(g·θ̇)²]: how much labelling x would change the
  complexity term e^s·C(θ*).
* ``sti`` — squared tangent influence E_y[(q·g)²], q = H⁻¹θ̂: how far labelling x would move
  θ* along the regularity path.
* ``ssi`` — squared s-influence E[(ds*/dε)²]: how much labelling x would move the
  regularity s* that the validation split selects. Needs ``X_val`` / ``y_val``.

Options (keyword arguments, e.g. from the experiment config): ``variant`` ("unlabeled", the
default, or "labeled" with ``y_pool``), ``tangent_method`` ("exact", "cg", "lissa", "sgdf"),
``damping``, ``batch_size``; STI and SSI also take ``solve_method`` ("exact", "cg") and
``solve_options`` (``tol``, ``max_iter`` of the solves, e.g. a CG budget for a network); SSI
also ``fd_step``, ``s_bounds``, ``curvature_floor`` and ``third_order``. Other context keys
are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alloop.regularity.scores import BATCH_SIZE, sld_scores, ssi_scores, sti_scores
from strategies.base import check_compatible
from strategies.registry import get, strategy

VARIANTS = ("unlabeled", "labeled")


def _pool_labels(name: str, variant: str, y_pool: Any) -> Any:
    if variant not in VARIANTS:
        raise ValueError(f"{name}: unknown variant {variant!r}; expected one of {VARIANTS}")
    if variant == "unlabeled":
        return None
    if y_pool is None:
        raise ValueError(
            f"{name}: the labeled variant scores observed labels; pass y_pool=... (one label per "
            "pool row), or use variant='unlabeled'"
        )
    return y_pool


@strategy(
    "sld",
    "Squared loss derivative E_y[(g·θ̇)²]: effect of the item on the model's complexity term.",
    needs=("gradients",),
)
def sld_strategy(
    model: Any,
    X_pool: Any,
    *,
    variant: str = "unlabeled",
    y_pool: Any = None,
    tangent_method: str = "exact",
    damping: float = 0.0,
    batch_size: int = BATCH_SIZE,
    **_: Any,
) -> np.ndarray:
    check_compatible(get("sld"), model)
    y = _pool_labels("sld", variant, y_pool)
    return sld_scores(
        model, X_pool, y, tangent_method=tangent_method, damping=damping, batch_size=batch_size
    )


@strategy(
    "sti",
    "Squared tangent influence E_y[(q·g)²], q = H⁻¹θ̂: movement of θ* along the regularity path.",
    needs=("gradients",),
)
def sti_strategy(
    model: Any,
    X_pool: Any,
    *,
    variant: str = "unlabeled",
    y_pool: Any = None,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    **_: Any,
) -> np.ndarray:
    check_compatible(get("sti"), model)
    y = _pool_labels("sti", variant, y_pool)
    return sti_scores(
        model,
        X_pool,
        y,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
        batch_size=batch_size,
    )


@strategy(
    "ssi",
    "Squared s-influence E[(ds*/dε)²]: movement of the validation-selected regularity s*.",
    needs=("gradients", "validation"),
)
def ssi_strategy(
    model: Any,
    X_pool: Any,
    *,
    X_val: Any = None,
    y_val: Any = None,
    variant: str = "unlabeled",
    y_pool: Any = None,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    fd_step: float = 1e-3,
    s_bounds: tuple[float, float] | None = (-10.0, 10.0),
    curvature_floor: float | None = None,
    third_order: bool = True,
    **_: Any,
) -> np.ndarray:
    check_compatible(get("ssi"), model)
    if X_val is None or y_val is None:
        raise ValueError(
            "ssi needs a validation split (X_val, y_val) to define the selected regularity s*; "
            "set the loop's validation fraction > 0 or pass X_val=..., y_val=..."
        )
    y = _pool_labels("ssi", variant, y_pool)
    return ssi_scores(
        model,
        X_pool,
        X_val,
        y_val,
        y,
        batch_size=batch_size,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
        fd_step=fd_step,
        bounds=s_bounds,
        curvature_floor=curvature_floor,
        third_order=third_order,
    )
