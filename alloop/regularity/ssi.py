"""SSI: the s-influence of a row on the validation loss, for many rows in row batches.

Per fit: θ̇; u = H⁻¹g_V; d = b − a + e with a = H⁻¹H_Vθ̇, b = e^s H⁻¹∇²C u and
e = H⁻¹∇_θ(uᵀHθ̇) (the third-order term, see :func:`ssi_directions`), as one solve of the summed
right-hand side; V''(s) in closed form from those. Per row batch: JVPs along
d = b − a + e, u and θ̇, fed to the closed forms of :mod:`alloop.regularity.heuristics`.
Without labels (``y=None``) the score is the expectation over y ~ p(y | x; θ*). The definitions
are the project's own (docs/math.md §4).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alloop.linalg import Inverse
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.regularity import heuristics as hx
from alloop.regularity.batched import (
    BATCH_SIZE,
    checked_tangent,
    finite,
    score_rows,
    solve_method_for,
)
from alloop.regularity.hypergradient import (
    _curvature,
    _hvp,
    _hypergradient,
    _value,
    check_differentiable,
    validation_tensors,
)
from alloop.tangent import regularity_rhs


@dataclass(frozen=True)
class SSIDirections:
    """The per-fit quantities of SSI (docs/math.md §4).

    Attributes
    ----------
    tangent : torch.Tensor
        θ̇ = dθ*/ds.
    u : torch.Tensor
        H⁻¹g_V.
    d : torch.Tensor
        b − a + e with a = H⁻¹H_Vθ̇, b = e^s H⁻¹∇²C u and e = H⁻¹∇_θ(uᵀHθ̇) (e = 0 when
        the third-order term is off).
    curvature : float
        The V''(s) the scores divide by: the central difference, or max(|V''|, floor) when s
        is at a search bound or V'' is below the floor.
    raw_curvature : float
        The central difference of V' itself.
    value, hypergradient : float
        V(s) and V'(s) at the model's s.
    """

    tangent: torch.Tensor
    u: torch.Tensor
    d: torch.Tensor
    curvature: float
    raw_curvature: float
    value: float
    hypergradient: float


def ssi_directions(
    model: DifferentiableModel,
    X_val: Any,
    y_val: Any,
    *,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    fd_step: float = 1e-3,
    bounds: tuple[float, float] | None = (-10.0, 10.0),
    curvature_floor: float | None = None,
    third_order: bool = True,
    solve_options: dict[str, Any] | None = None,
    curvature_method: str = "exact",
) -> SSIDirections:
    """θ̇, u, d and V''(s) for SSI: three solves (θ̇, u and d = b − a + e), no refit.

    The model should be fitted at s* = argmin V (what :func:`select_regularity` returns);
    ds*/dε is the implicit derivative of the stationary point of V at the model's s.

    Up-weighting z by ε changes V'(s) = g_V·θ̇ at first order by

        ∂_ε V' = (b − a + e)·g(z) − c(z),   e = H⁻¹ ∇_θ(uᵀ H(θ) θ̇)

    where e carries the third-derivative term D_θH[I_θ(z)]·θ̇ that docs/math.md §4 drops.
    That term vanishes for squared loss with a model linear in θ (ridge), but not for
    logistic or softmax GLMs, where dropping it misranks candidates (Spearman ≈ 0.7 against
    brute-force ds*/dε on a small logistic problem, against 1.0 with it). It costs one
    reverse pass through the training loss's Gauss–Newton form and a fourth solve per fit;
    ``third_order=False`` gives the three-solve approximation of the spec.

    Parameters
    ----------
    model : DifferentiableModel
        Fitted at s*.
    X_val, y_val
        The validation split that defines V.
    tangent_method, solve_method, damping
        As :func:`sti_scores`.
    fd_step : float
        Step h of the central difference V'' ≈ (V'(s+h) − V'(s−h)) / 2h
        (``curvature_method="difference"`` only).
    bounds : (float, float) or None
        The search interval s* was chosen on. When s sits at one of them, V''(s) is not the
        curvature of a minimum: a warning is given and max(|V''|, floor) is used.
    curvature_floor : float, optional
        Smallest |V''| used; default 1e-6 per validation point. A V'' below it (not a
        minimum) also warns and is replaced by max(|V''|, floor).
    third_order : bool
        Keep the third-derivative term e (exact first order for GLMs); see above.
    solve_options : dict, optional
        ``tol`` / ``max_iter`` for the linear solves (and an "exact" or "cg" tangent).
    curvature_method : {"exact", "difference"}
        "exact" (default): V''(s) from the quantities already at hand, no refit (see
        :func:`_exact_curvature`). "difference": the central difference of V' over two
        warm-started refits at s ± ``fd_step`` (the former default; O(h²) error).
    """
    model = check_differentiable(model, "SSI")
    if curvature_method not in ("exact", "difference"):
        raise ValueError(
            f"curvature_method must be 'exact' or 'difference'; got {curvature_method!r}"
        )
    Xv, yv = validation_tensors(model, X_val, y_val)
    method = solve_method_for(tangent_method, solve_method)
    solve_kw = dict(solve_options or {})
    inverse = Inverse(model, method, damping=damping, **solve_kw)  # one factorization for every solve
    theta_dot = checked_tangent(model, tangent_method, damping, solve_kw, inverse)
    grad_s, g_val, _ = _hypergradient(model, Xv, yv, tangent_method, damping, theta_dot)
    h_theta_dot = _hvp(model, Xv, yv, theta_dot)
    u = inverse(g_val)
    theta = model.theta_
    if isinstance(model, GLM) and model.closed_form:
        c_hvp = model.penalty_mask() * u  # ∇²C u for the default C = ½‖mask∘θ‖²
    else:
        c_hvp = torch.func.jvp(torch.func.grad(model.complexity), (theta,), (u,))[1].detach()
    exact = curvature_method == "exact"
    third = _third_order_gradient(model, u, theta_dot) if third_order or exact else None
    # d = b − a + e = H⁻¹(e^s∇²C u − H_Vθ̇ + ∇_θ(uᵀHθ̇)): one solve of the summed right-hand
    # side instead of three (for a network each solve is a run of CG)
    rhs = model.lam * c_hvp - h_theta_dot + (third if third_order else 0.0)
    d = finite(inverse(rhs).detach(), "SSI's direction d", model)
    u = finite(u.detach(), "SSI's direction u = H⁻¹g_V", model)

    if exact:
        raw = _exact_curvature(model, theta_dot, u, h_theta_dot, c_hvp, third)
    else:
        raw = _curvature(model, Xv, yv, fd_step, tangent_method, damping, solve_kw)
    floor = 1e-6 * Xv.shape[0] if curvature_floor is None else float(curvature_floor)
    curvature = raw
    at_bound = bounds is not None and any(
        math.isclose(model.s, bound, rel_tol=0.0, abs_tol=1e-9) for bound in bounds
    )
    if at_bound or not raw > floor:
        reason = (
            f"s = {model.s:.4g} is at a bound of the search range {tuple(bounds)}"
            if at_bound
            else f"V''(s) = {raw:.3g} is not a positive curvature above the floor {floor:.3g}"
        )
        curvature = max(abs(raw), floor)
        warnings.warn(
            f"SSI: {reason}, so s is not an interior minimum of the validation loss; dividing "
            f"by max(|V''|, floor) = {curvature:.3g}. Widen the search range "
            "(strategy.params.s_bounds in a config, s_bounds= in Python) or check the "
            "validation split.",
            RuntimeWarning,
            stacklevel=2,
        )
    return SSIDirections(
        tangent=theta_dot,
        u=u,
        d=d,
        curvature=curvature,
        raw_curvature=raw,
        value=_value(model, Xv, yv),
        hypergradient=grad_s,
    )


def _exact_curvature(
    model: DifferentiableModel,
    theta_dot: torch.Tensor,
    u: torch.Tensor,
    h_theta_dot: torch.Tensor,
    c_hvp: torch.Tensor,
    third: torch.Tensor,
) -> float:
    """V''(s) = θ̇ᵀH_Vθ̇ + g_V·θ̈, with θ̈ from differentiating Hθ̇ = −ρ once more in s.

    With H = ∇²L + e^s∇²C and ρ = e^s∇C, d/ds gives
    Hθ̈ = −(D_θH[θ̇]θ̇ + 2e^s∇²Cθ̇ + ρ), so with u = H⁻¹g_V (H symmetric)

        V'' = θ̇·H_Vθ̇ − θ̇·∇_θ(uᵀHθ̇) − 2e^s θ̇·∇²C u − u·ρ,

    every term of which SSI has already computed (``third`` = ∇_θ(uᵀH(θ)θ̇)). A damping δI
    in the solves does not depend on s and drops out. Exact up to the solves' accuracy,
    where the central difference has an O(h²) error and costs two refits.
    """
    rho = regularity_rhs(model)
    value = (
        theta_dot @ h_theta_dot
        - theta_dot @ third
        - 2.0 * model.lam * (theta_dot @ c_hvp)
        - u @ rho
    )
    return float(value)


def _third_order_gradient(
    model: DifferentiableModel, u: torch.Tensor, theta_dot: torch.Tensor
) -> torch.Tensor:
    """∇_θ (uᵀ H(θ) θ̇) at θ*, H the Hessian of the training objective F.

    For a GLM, uᵀH(θ)θ̇ = Σ_i (J_i u)ᵀ Λ(f_i(θ)) (J_i θ̇) + e^s uᵀ∇²C(θ) θ̇ with J_i constant,
    so one reverse pass through Λ suffices (and serves sparse X). Other models differentiate
    the Hessian-vector product itself (reverse over forward over reverse).
    """
    theta, X, y = model.theta_, model.X_train_, model.y_train_
    lik, s2 = model.likelihood, model.sigma2
    if isinstance(model, GLM) and model.closed_form:
        # closed form: the default C = ½‖mask∘θ‖² has a constant ∇²C, so only the loss term
        # depends on θ, and its gradient is X̃ᵀ(∂/∂f of the Gauss–Newton form)
        f, fdot_u = model.output_jvp(theta, X, u)
        fdot_t = model.output(theta_dot, X)
        r = hx.gauss_newton_form_output_grad(lik, f, fdot_u, fdot_t, s2)
        return model.output_transpose(X, r).detach()

    def complexity_term(t: torch.Tensor) -> torch.Tensor:
        hvp = torch.func.jvp(torch.func.grad(model.complexity), (t,), (theta_dot,))[1]
        return model.lam * (u @ hvp)

    if isinstance(model, GLM):
        _, fdot_u = model.output_jvp(theta, X, u)
        _, fdot_t = model.output_jvp(theta, X, theta_dot)
        fdot_u, fdot_t = fdot_u.detach(), fdot_t.detach()

        def form(t: torch.Tensor) -> torch.Tensor:
            loss_term = hx.gauss_newton_form(lik, model.output(t, X), fdot_u, fdot_t, s2).sum()
            return loss_term + complexity_term(t)

    else:
        grad = torch.func.grad(lambda t: model.objective(t, X, y))

        def form(t: torch.Tensor) -> torch.Tensor:
            return u @ torch.func.jvp(grad, (t,), (theta_dot,))[1]

    return torch.func.grad(form)(theta).detach()


def s_influence_scores(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    X_val: Any = None,
    y_val: Any = None,
    *,
    directions: SSIDirections | None = None,
    batch_size: int = BATCH_SIZE,
    **options: Any,
) -> np.ndarray:
    """ds*/dε = −(d·g(z) − c(z)) / V''(s*) for labeled rows, shape (n,).

    The signed influence of up-weighting each labeled row on the regularity s* that validation
    selects. ``options`` go to :func:`ssi_directions` (unless ``directions`` is given).
    """
    model = check_differentiable(model, "the s-influence ds*/dε")
    if y is None:
        raise ValueError("ds*/dε needs labels y; for pool rows use ssi_scores(y=None)")
    dirs = ssi_directions(model, X_val, y_val, **options) if directions is None else directions
    lik, s2, v2 = model.likelihood, model.sigma2, dirs.curvature
    return score_rows(
        model,
        X,
        y,
        [dirs.d, dirs.u, dirs.tangent],
        batch_size,
        lambda f, fd, yb: hx.s_influence(lik, f, fd[0], fd[1], fd[2], yb, v2, s2),
    )


def ssi_scores(
    model: DifferentiableModel,
    X: Any,
    X_val: Any = None,
    y_val: Any = None,
    y: Any = None,
    *,
    directions: SSIDirections | None = None,
    batch_size: int = BATCH_SIZE,
    **options: Any,
) -> np.ndarray:
    """SSI: squared s-influence (ds*/dε)², or (E_y[(d·g)²] + c²)/V''² when ``y`` is None.

    Parameters
    ----------
    model : DifferentiableModel
        Fitted at s* (see :func:`alloop.regularity.select_regularity`).
    X : array-like, shape (n, d)
        Rows to score.
    X_val, y_val
        The validation split that selects s* (required unless ``directions`` is given).
    y : array-like, optional
        Observed labels for the labeled variant.
    directions : SSIDirections, optional
        Reuse the per-fit quantities of :func:`ssi_directions`.
    batch_size : int
        Rows per batch of output JVPs (three per batch: along d, u and θ̇).
    **options
        Passed to :func:`ssi_directions` (``tangent_method``, ``solve_method``, ``damping``,
        ``fd_step``, ``bounds``, ``curvature_floor``, ``third_order``, ``solve_options``).
    """
    model = check_differentiable(model, "SSI")
    dirs = ssi_directions(model, X_val, y_val, **options) if directions is None else directions
    lik, s2, v2 = model.likelihood, model.sigma2, dirs.curvature
    return score_rows(
        model,
        X,
        y,
        [dirs.d, dirs.u, dirs.tangent],
        batch_size,
        lambda f, fd, yb: hx.ssi(lik, f, fd[0], fd[1], fd[2], v2, yb, s2),
    )
