"""Regularity-tangent query strategies: SLD, STI and SSI (docs/math.md §4).

(Over 400 lines: three strategies sharing their options, row-wise states and vector-s dispatch.)

* ``sld`` — squared loss derivative E_y[(g·θ̇)²]: how much labelling x would change the
  complexity term e^s·C(θ*).
* ``sti`` — squared tangent influence E_y[(q·g)²], q = H⁻¹θ̂: how far labelling x would move
  θ* along the regularity path.
* ``ssi`` — squared s-influence E[(ds*/dε)²]: how much labelling x would move the
  regularity s* that the validation split selects. Needs ``X_val`` / ``y_val``.

Options (keyword arguments, e.g. ``strategy.params`` of the experiment config), declared by
:class:`SLDOptions`, :class:`STIOptions` and :class:`SSIOptions`: ``variant`` ("unlabeled", the
default, or "labeled" with ``y_pool``), ``tangent_method`` ("exact", "cg", "lissa", "sgdf"),
``damping``, ``batch_size``; STI and SSI also take ``solve_method`` ("exact", "cg") and
``solve_options`` (``tol``, ``max_iter`` of the solves, e.g. a CG budget for a network, and
CG's ``preconditioner`` and ``hvp_rows``); SSI
also ``curvature_method`` ("exact", the default, or "difference" with ``fd_step``),
``s_bounds``, ``curvature_floor`` and ``third_order``. Any other name is
refused (:class:`~strategies.base.StrategyOptionsError`).

All three are row-wise in their default (unlabeled) variant: ``prepare`` does the per-round
solves on the driver — θ̇ for SLD, q = H⁻¹θ̂ for STI, SSI's directions and V''(s) — and
``score_rows`` needs only the fitted model, that state and the rows (one output JVP per
direction and row batch). The labeled variant scores each row at its pool label ``y_pool``,
which a per-round state cannot carry: its ``prepare`` raises :class:`~strategies.base.NotRowWise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from strategies.base import NotRowWise, StrategyOptions, check_compatible
from strategies.registry import get, strategy

if TYPE_CHECKING:
    import torch

    from alloop.models.base import DifferentiableModel
    from alloop.regularity.ssi import SSIDirections

#: rows per JVP batch; equals alloop.regularity.scores.BATCH_SIZE (tests/test_startup.py keeps
#: them equal), copied so that listing strategies needs no torch import.
BATCH_SIZE = 8192

VARIANTS = ("unlabeled", "labeled")


class SolveOptions(TypedDict, total=False):
    """The linear solves (:func:`alloop.linalg.solve`): ``tol``, ``max_iter``; for CG also
    ``preconditioner`` ("jacobi": the Gauss–Newton diagonal) and ``hvp_rows`` (Hessian
    products over that many training rows, the unbiased subsampled Hessian)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    tol: float
    max_iter: int
    preconditioner: Literal["jacobi"] | None
    hvp_rows: int


class SLDOptions(StrategyOptions):
    """Options of ``sld``."""

    variant: Literal["unlabeled", "labeled"] = "unlabeled"
    tangent_method: Literal["exact", "cg", "lissa", "sgdf"] = "exact"
    damping: float = Field(0.0, ge=0.0, strict=True)
    batch_size: int = Field(BATCH_SIZE, gt=0, strict=True, description="rows per JVP batch")


class STIOptions(SLDOptions):
    """Options of ``sti``: SLD's plus the solves for q = H⁻¹θ̂."""

    solve_method: Literal["exact", "cg"] | None = Field(
        None, description="default: the tangent method when it is exact or cg, else cg"
    )
    solve_options: SolveOptions | None = None


class SSIOptions(STIOptions):
    """Options of ``ssi``: STI's plus the finite-difference and s-search settings."""

    curvature_method: Literal["exact", "difference"] = Field(
        "exact", description="V''(s) in closed form, or by a central difference of two refits"
    )
    fd_step: float = Field(
        1e-3, gt=0.0, strict=True, description="step in s of curvature_method='difference'"
    )
    s_bounds: tuple[float, float] | None = (-10.0, 10.0)
    curvature_floor: float | None = Field(None, ge=0.0, strict=True)
    third_order: bool = Field(True, strict=True)


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


def _unlabeled_only(name: str, variant: str, y_pool: Any) -> None:
    if _pool_labels(name, variant, y_pool) is not None:
        raise NotRowWise(
            f"{name}: the labeled variant scores each row at its pool label y_pool, which a "
            "per-round state cannot carry; score it in-process, or use variant='unlabeled'"
        )


def _own_scores(name: str, model: Any) -> bool:
    """Whether the model scores ``name`` itself (a vector s, e.g. the hierarchical model)."""
    from alloop.models.capabilities import scores_itself

    return scores_itself(model, name)


def _not_row_wise(name: str, model: Any) -> None:
    if _own_scores(name, model):
        raise NotRowWise(
            f"{name}: {type(model).__name__} scores candidates with its own tangents, not by "
            "rows of a per-round state; score it in-process"
        )


# --------------------------------------------------------------------------- row-wise states
@dataclass(frozen=True)
class DirectionState:
    """A fitted model and one parameter-space direction v; rows score E_y[(g·v)²].

    SLD's v is the tangent θ̇, STI's is q = H⁻¹θ̂: the closed form is the same.
    """

    model: DifferentiableModel
    direction: torch.Tensor
    batch_size: int = BATCH_SIZE


@dataclass(frozen=True)
class SSIState:
    """A fitted model and its per-fit SSI quantities (:func:`ssi_directions`)."""

    model: DifferentiableModel
    directions: SSIDirections
    batch_size: int = BATCH_SIZE


def directional_rows(state: DirectionState, X_rows: Any) -> np.ndarray:
    """E_y[(g·v)²] of each row along the state's direction: SLD's and STI's ``score_rows``."""
    from alloop.regularity.scores import sld_scores
    return sld_scores(
        state.model, X_rows, tangent=state.direction, batch_size=state.batch_size
    )


def ssi_rows(state: SSIState, X_rows: Any) -> np.ndarray:
    """SSI of each row from the state's directions: SSI's ``score_rows``."""
    from alloop.regularity.ssi import ssi_scores
    return ssi_scores(
        state.model, X_rows, directions=state.directions, batch_size=state.batch_size
    )


# --------------------------------------------------------------------------- SLD
def sld_prepare(
    model: Any,
    *,
    variant: str = "unlabeled",
    y_pool: Any = None,
    tangent_method: str = "exact",
    damping: float = 0.0,
    batch_size: int = BATCH_SIZE,
    **_: Any,
) -> DirectionState:
    """SLD's per-round state: the model and its regularity tangent θ̇."""
    from alloop.regularity.batched import checked_tangent
    from alloop.regularity.hypergradient import check_differentiable
    check_compatible(get("sld"), model)
    _not_row_wise("sld", model)
    _unlabeled_only("sld", variant, y_pool)
    model = check_differentiable(model, "SLD")
    return DirectionState(model, checked_tangent(model, tangent_method, damping), batch_size)


@strategy(
    "sld",
    "Squared loss derivative E_y[(g·θ̇)²]: effect of the item on the model's complexity term.",
    needs=("gradients",),
    options=SLDOptions,
    prepare=sld_prepare,
    score_rows=directional_rows,
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
    from alloop.regularity.scores import sld_scores
    check_compatible(get("sld"), model)
    if _own_scores("sld", model):
        return model.regularity_scores(
            "sld", X_pool, variant=variant, y_pool=y_pool, tangent_method=tangent_method,
            damping=damping, batch_size=batch_size,
        )
    y = _pool_labels("sld", variant, y_pool)
    if y is not None:
        return sld_scores(
            model, X_pool, y, tangent_method=tangent_method, damping=damping,
            batch_size=batch_size,
        )
    state = sld_prepare(
        model, tangent_method=tangent_method, damping=damping, batch_size=batch_size
    )
    return directional_rows(state, X_pool)


# --------------------------------------------------------------------------- STI
def sti_prepare(
    model: Any,
    *,
    variant: str = "unlabeled",
    y_pool: Any = None,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    **_: Any,
) -> DirectionState:
    """STI's per-round state: the model and q = H⁻¹θ̂ (θ̇ and q share one factorization)."""
    from alloop.regularity.hypergradient import check_differentiable
    from alloop.regularity.scores import sti_direction
    check_compatible(get("sti"), model)
    _not_row_wise("sti", model)
    _unlabeled_only("sti", variant, y_pool)
    model = check_differentiable(model, "STI")
    q = sti_direction(
        model,
        None,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
    )
    return DirectionState(model, q, batch_size)


@strategy(
    "sti",
    "Squared tangent influence E_y[(q·g)²], q = H⁻¹θ̂: movement of θ* along the regularity path.",
    needs=("gradients",),
    options=STIOptions,
    prepare=sti_prepare,
    score_rows=directional_rows,
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
    from alloop.regularity.scores import sti_scores
    check_compatible(get("sti"), model)
    if _own_scores("sti", model):
        return model.regularity_scores(
            "sti", X_pool, variant=variant, y_pool=y_pool, tangent_method=tangent_method,
            solve_method=solve_method, damping=damping, solve_options=solve_options,
            batch_size=batch_size,
        )
    y = _pool_labels("sti", variant, y_pool)
    options = dict(
        tangent_method=tangent_method, solve_method=solve_method, damping=damping,
        solve_options=solve_options, batch_size=batch_size,
    )
    if y is not None:
        return sti_scores(model, X_pool, y, **options)
    return directional_rows(sti_prepare(model, **options), X_pool)


# --------------------------------------------------------------------------- SSI
def _validation_split(X_val: Any, y_val: Any) -> None:
    if X_val is None or y_val is None:
        raise ValueError(
            "ssi needs a validation split (X_val, y_val) to define the selected regularity s*; "
            "set the loop's validation fraction > 0 or pass X_val=..., y_val=..."
        )


def ssi_prepare(
    model: Any,
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
    curvature_method: str = "exact",
    **_: Any,
) -> SSIState:
    """SSI's per-round state: the model, its directions θ̇, u, d and V''(s)."""
    from alloop.regularity.hypergradient import check_differentiable
    from alloop.regularity.ssi import ssi_directions
    check_compatible(get("ssi"), model)
    _not_row_wise("ssi", model)
    _validation_split(X_val, y_val)
    _unlabeled_only("ssi", variant, y_pool)
    model = check_differentiable(model, "SSI")
    directions = ssi_directions(
        model,
        X_val,
        y_val,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
        fd_step=fd_step,
        bounds=s_bounds,
        curvature_floor=curvature_floor,
        third_order=third_order,
        curvature_method=curvature_method,
    )
    return SSIState(model, directions, batch_size)


@strategy(
    "ssi",
    "Squared s-influence E[(ds*/dε)²]: movement of the validation-selected regularity s*.",
    needs=("gradients", "validation"),
    options=SSIOptions,
    prepare=ssi_prepare,
    score_rows=ssi_rows,
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
    curvature_method: str = "exact",
    **_: Any,
) -> np.ndarray:
    from alloop.regularity.ssi import ssi_scores
    check_compatible(get("ssi"), model)
    _validation_split(X_val, y_val)
    if _own_scores("ssi", model):
        return model.regularity_scores(
            "ssi", X_pool, X_val=X_val, y_val=y_val, variant=variant, y_pool=y_pool,
            tangent_method=tangent_method, solve_method=solve_method, damping=damping,
            solve_options=solve_options, batch_size=batch_size, fd_step=fd_step,
            s_bounds=s_bounds, curvature_floor=curvature_floor, third_order=third_order,
            curvature_method=curvature_method,
        )
    y = _pool_labels("ssi", variant, y_pool)
    options = dict(
        tangent_method=tangent_method, solve_method=solve_method, damping=damping,
        solve_options=solve_options, fd_step=fd_step, curvature_floor=curvature_floor,
        third_order=third_order, curvature_method=curvature_method,
    )
    if y is not None:
        return ssi_scores(
            model, X_pool, X_val, y_val, y, batch_size=batch_size, bounds=s_bounds, **options
        )
    state = ssi_prepare(
        model, X_val=X_val, y_val=y_val, batch_size=batch_size, s_bounds=s_bounds, **options
    )
    return ssi_rows(state, X_pool)
