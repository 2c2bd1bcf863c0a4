"""SLD, STI and SSI scores of many rows for a fitted model, in row batches.

Each heuristic needs a few parameter-space vectors per fit (never per candidate), then one
forward JVP of the model output per vector and row batch, fed to the closed forms of
:mod:`alloop.regularity.heuristics`:

* SLD — per fit: θ̇ = −H⁻¹ρ (the tangent). Per row batch: one JVP along θ̇.
* STI — per fit: θ̇ and q = H⁻¹θ̂ (one extra solve). Per row batch: one JVP along q.
* SSI — per fit: θ̇; u = H⁻¹g_V; a = H⁻¹H_Vθ̇; b = e^s H⁻¹∇²C u; e = H⁻¹∇_θ(uᵀHθ̇)
  (the third-order term, see :func:`ssi_directions`); V''(s) in closed form from those.
  Per row batch: JVPs along d = b − a + e, u and θ̇.

Without labels (``y=None``) every score is the expectation over y ~ p(y | x; θ*), the default
for pool queries; with labels it is the value at the observed y. The definitions are the
project's own (docs/math.md §4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alloop.linalg import SOLVERS, hessian, solve
from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import as_features, matmul, rows
from alloop.regularity import heuristics as hx
from alloop.regularity.hypergradient import (
    _curvature,
    _hvp,
    _hypergradient,
    _value,
    check_differentiable,
    tangent_options,
    validation_tensors,
)
from alloop.tangent import regularity_rhs, regularity_tangent

__all__ = [
    "SSIDirections",
    "regularity_loss_derivative",
    "s_influence_scores",
    "sld_scores",
    "ssi_directions",
    "ssi_scores",
    "sti_direction",
    "sti_scores",
]

#: rows per output-JVP batch: a 100 000 × 64 pool is 13 matrix products per direction.
BATCH_SIZE = 8192


# --------------------------------------------------------------------------- plumbing
def _solve_method(tangent_method: str, solve_method: str | None) -> str:
    """The linear solver for q, u, a, b: the tangent's own if it is one, else CG."""
    if solve_method is not None:
        return solve_method
    return tangent_method if tangent_method in SOLVERS else "cg"


def _finite(x: torch.Tensor, what: str, model: DifferentiableModel) -> torch.Tensor:
    if not torch.isfinite(x).all():
        raise FloatingPointError(
            f"{what} of {model!r} is not finite: the Hessian is (nearly) singular at "
            f"λ = e^s = {model.lam:.3g}. Use a larger s, or pass damping > 0."
        )
    return x


class _Inverse:
    """b ↦ (H + δI)⁻¹b at one fit's θ*, for every solve of that fit.

    "exact" builds and factors H once (the first call) and reuses the factor, where
    :func:`alloop.linalg.solve` would build H again for every call: STI's θ̇ and q, and SSI's
    θ̇, u, a, b, e share one factorization. Null-space directions are projected out and a
    numerically singular H is jittered exactly as :func:`alloop.linalg.solve` does. "cg" hands
    each call to :func:`alloop.linalg.solve` (``options``: ``tol``, ``max_iter``).
    """

    def __init__(
        self,
        model: DifferentiableModel,
        method: str,
        damping: float = 0.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        if method not in SOLVERS:
            raise ValueError(f"unknown solver {method!r}; expected one of {SOLVERS}")
        self.model, self.method, self.damping = model, method, float(damping)
        self.options = dict(options or {})
        self.null = model.null_space()
        self._factor: torch.Tensor | None = None

    def _project(self, b: torch.Tensor) -> torch.Tensor:
        return b if self.null is None else b - self.null @ (self.null.T @ b)

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        if self.method != "exact":
            return solve(self.model, b, self.method, damping=self.damping, **self.options)
        if self._factor is None:
            H = hessian(self.model)
            if self.damping:
                H = H + self.damping * torch.eye(H.shape[0], dtype=H.dtype)
            if self.null is not None:
                H = H + self.null @ self.null.T
            what = f"the Hessian of {self.model!r} (λ = e^s = {self.model.lam:.3g})"
            self._factor = cholesky_with_jitter(H, what=what)
        b = self._project(b)
        x = torch.cholesky_solve(b.unsqueeze(1) if b.dim() == 1 else b, self._factor)
        return self._project(x[:, 0] if b.dim() == 1 else x)


def checked_tangent(
    model: DifferentiableModel,
    tangent_method: str,
    damping: float,
    solve_options: dict[str, Any] | None = None,
    inverse: _Inverse | None = None,
) -> torch.Tensor:
    """θ̇ by ``tangent_method``, detached, with an error naming the model if it is not finite.

    The one place the scores (and the strategies' per-round state) get their tangent from.
    """
    if tangent_method == "exact" and inverse is not None and inverse.method == "exact":
        theta_dot = -inverse(regularity_rhs(model))  # the "exact" tangent, on the shared factor
    else:
        options = tangent_options(damping, tangent_method, solve_options)
        theta_dot = regularity_tangent(model, tangent_method, **options)
    return _finite(theta_dot.detach(), "the regularity tangent θ̇", model)


def _labels(model: DifferentiableModel, y: Any, n: int) -> torch.Tensor | None:
    if y is None:
        return None
    y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if len(y) != n:
        raise ValueError(f"got {len(y)} labels for {n} rows")
    return model.encode_y(y)


def _batches(X: torch.Tensor, batch_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
    if not (isinstance(batch_size, int | np.integer) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    n = X.shape[0]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        block = rows(X, np.arange(start, stop)) if X.is_sparse else X[start:stop]
        yield slice(start, stop), block


def _jvps(
    model: DifferentiableModel, X: torch.Tensor, directions: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(f, [ḟ_v for v in directions]) on a row batch: one ``output_jvp`` per direction.

    A GLM is linear in θ, so ḟ_v = f(X; v); with several directions (SSI's three) f and every
    ḟ_v come from ONE product of X with the stacked weights, which reads X once instead of
    twice per direction (1.4–1.7× faster on a 100,000 × 64 pool; benchmarks/scoring.py). With
    one direction that gains nothing, so the plain path is kept.
    """
    theta = model.theta_
    if isinstance(model, GLM) and len(directions) > 1:
        return _glm_outputs(model, X, [theta, *directions])
    fdots = []
    f = None
    for v in directions:
        out, fdot = model.output_jvp(theta, X, v)
        f = out.detach() if f is None else f
        fdots.append(fdot.detach())
    return f, fdots


def _glm_outputs(
    model: GLM, X: torch.Tensor, thetas: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """f(X; t) for every t in ``thetas`` by one matrix product; returns (first, [rest])."""
    parts = [model.weights(t) for t in thetas]
    W = torch.cat([w for w, _ in parts], dim=1)
    out = matmul(X, W)
    if model.fit_intercept:
        out = out + torch.cat([b for _, b in parts])
    # One contiguous (n, K) block per θ: the closed forms run faster on contiguous rows.
    outs = out.detach().view(out.shape[0], len(thetas), -1).transpose(0, 1).contiguous()
    return outs[0], list(outs[1:])


def _score_rows(model, X, y, directions, batch_size, closed_form) -> np.ndarray:
    """Apply ``closed_form(f, fdots, y_batch)`` over row batches of X; one float per row."""
    Xt = as_features(X)
    yt = _labels(model, y, Xt.shape[0])
    out = np.empty(Xt.shape[0], dtype=np.float64)
    for index, block in _batches(Xt, batch_size):
        f, fdots = _jvps(model, block, directions)
        value = closed_form(f, fdots, None if yt is None else yt[index])
        out[index] = value.detach().numpy()
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(
            f"{int((~np.isfinite(out)).sum())} scores of {model!r} are not finite: the Hessian "
            f"is (nearly) singular at λ = e^s = {model.lam:.3g}. Use a larger s, or damping > 0."
        )
    return out


# --------------------------------------------------------------------------- SLD
def regularity_loss_derivative(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """τ(z) = g(z)·θ̇ = dℓ(z; θ*(s))/ds for labeled rows, shape (n,).

    By the identity of docs/math.md §3 this is also d/dε [e^s C(θ*_ε)]: the change of the
    complexity term when z is up-weighted by ε. SLD(z) = τ(z)².
    """
    model = check_differentiable(model, "the loss derivative τ = g·θ̇")
    theta_dot = checked_tangent(model, tangent_method, damping) if tangent is None else tangent
    if y is None:
        raise ValueError("τ(z) = g(z)·θ̇ needs labels y; for pool rows use sld_scores(y=None)")
    lik, s2 = model.likelihood, model.sigma2
    return _score_rows(
        model,
        X,
        y,
        [theta_dot],
        batch_size,
        lambda f, fd, yb: hx.directional_derivative(lik, f, fd[0], yb, s2),
    )


def sld_scores(
    model: DifferentiableModel,
    X: Any,
    y: Any = None,
    *,
    tangent_method: str = "exact",
    damping: float = 0.0,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """SLD: squared loss derivative (g·θ̇)², or E_y[(g·θ̇)²] when ``y`` is None.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model.
    X : array-like, scipy sparse or tensor, shape (n, d)
    y : array-like, optional
        Observed labels (labeled variant). Without them (the default for pool queries) the
        score is the expectation over the model's predictive distribution.
    tangent_method : str
        How θ̇ is computed: "exact" (dense Cholesky), "cg", or any method
        :func:`alloop.tangent.regularity_tangent` knows ("lissa", "sgdf").
    damping : float
        Added to H in the solves, for a singular Hessian.
    tangent : torch.Tensor, optional
        θ̇ already computed for this fit.
    batch_size : int
        Rows per output-JVP batch.

    Returns
    -------
    numpy.ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(50, 2)); y = (X[:, 0] > 0).astype(int)
    >>> scores = sld_scores(LogisticGLM(s=0.0).fit(X, y), rng.normal(size=(5, 2)))
    >>> scores.shape, bool((scores >= 0).all())
    ((5,), True)
    """
    model = check_differentiable(model, "SLD")
    theta_dot = checked_tangent(model, tangent_method, damping) if tangent is None else tangent
    lik, s2 = model.likelihood, model.sigma2
    return _score_rows(
        model,
        X,
        y,
        [theta_dot],
        batch_size,
        lambda f, fd, yb: hx.squared_directional_derivative(lik, f, fd[0], yb, s2),
    )


# --------------------------------------------------------------------------- STI
def sti_direction(
    model: DifferentiableModel,
    tangent: torch.Tensor | None = None,
    *,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """q = H⁻¹θ̂ with θ̂ = θ̇/‖θ̇‖ (one solve per fit).

    Without ``tangent``, θ̇ is computed too, by ``tangent_method``; with exact solves both
    share one factorization of H. ``solve_method`` defaults as in :func:`sti_scores`;
    ``solve_options`` (``tol``, ``max_iter``) go to :func:`alloop.linalg.solve`.
    """
    method = _solve_method(tangent_method, solve_method)
    inverse = _Inverse(model, method, damping, solve_options)
    if tangent is None:
        tangent = checked_tangent(model, tangent_method, damping, solve_options, inverse)
    return _sti_direction(model, tangent, inverse)


def _sti_direction(
    model: DifferentiableModel, tangent: torch.Tensor, inverse: _Inverse
) -> torch.Tensor:
    norm = float(tangent.norm())
    if norm == 0.0:
        raise ValueError(
            f"the regularity tangent of {model!r} is zero (θ* does not depend on s, e.g. every "
            "penalized weight is 0), so STI's direction θ̇/‖θ̇‖ is undefined; use SLD or a "
            "smaller s"
        )
    q = inverse(tangent / norm)
    return _finite(q.detach(), "STI's direction q = H⁻¹θ̂", model)


def sti_scores(
    model: DifferentiableModel,
    X: Any,
    y: Any = None,
    *,
    tangent_method: str = "exact",
    solve_method: str | None = None,
    damping: float = 0.0,
    solve_options: dict[str, Any] | None = None,
    tangent: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """STI: squared tangent influence (θ̂·I_θ(z))² = (q·g)², or E_y[(q·g)²] when ``y`` is None.

    It measures how far up-weighting the point moves θ* along the regularity path. Parameters
    as :func:`sld_scores`; ``solve_method`` ("exact" or "cg") is the solver for q, by default
    the tangent method when it is one of those, else "cg"; ``solve_options`` (``tol``,
    ``max_iter``) go to the linear solves (e.g. a CG budget for a network).
    """
    model = check_differentiable(model, "STI")
    q = sti_direction(
        model,
        tangent,
        tangent_method=tangent_method,
        solve_method=solve_method,
        damping=damping,
        solve_options=solve_options,
    )
    lik, s2 = model.likelihood, model.sigma2
    return _score_rows(
        model,
        X,
        y,
        [q],
        batch_size,
        lambda f, fd, yb: hx.squared_directional_derivative(lik, f, fd[0], yb, s2),
    )


# --------------------------------------------------------------------------- SSI
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
    """θ̇, u, d and V''(s) for SSI: four solves (three without ``third_order``), no refit.

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
    method = _solve_method(tangent_method, solve_method)
    solve_kw = dict(solve_options or {})
    inverse = _Inverse(model, method, damping, solve_kw)  # one factorization for every solve
    theta_dot = checked_tangent(model, tangent_method, damping, solve_kw, inverse)
    grad_s, g_val, _ = _hypergradient(model, Xv, yv, tangent_method, damping, theta_dot)
    h_theta_dot = _hvp(model, Xv, yv, theta_dot)
    ua = inverse(torch.stack([g_val, h_theta_dot], dim=1))
    u, a = ua[:, 0], ua[:, 1]
    theta = model.theta_
    c_hvp = torch.func.jvp(torch.func.grad(model.complexity), (theta,), (u,))[1].detach()
    rhs = [model.lam * c_hvp]
    exact = curvature_method == "exact"
    third = _third_order_gradient(model, u, theta_dot) if third_order or exact else None
    if third_order:
        rhs.append(third)
    be = inverse(torch.stack(rhs, dim=1))
    d = be[:, 0] - a + (be[:, 1] if third_order else 0.0)
    d = _finite(d.detach(), "SSI's direction d", model)
    u = _finite(u.detach(), "SSI's direction u = H⁻¹g_V", model)

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
    return _score_rows(
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
    return _score_rows(
        model,
        X,
        y,
        [dirs.d, dirs.u, dirs.tangent],
        batch_size,
        lambda f, fd, yb: hx.ssi(lik, f, fd[0], fd[1], fd[2], v2, yb, s2),
    )
