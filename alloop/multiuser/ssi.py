"""Multi-user SSI: the influence of a (user, item) candidate on the (s_0, s_1) validation selects.

(Over 400 lines: the SSI directions and the scores that share their per-fit tensors.)

With s = (s_0, s_1) (or the subset chosen) fitted at s* = argmin V, V(s) = Σ_{j∈Val} ℓ(z_j;
θ*_{u_j}(s)), up-weighting a candidate z = (x, y) of user u by ε (F ← F + ε ℓ(z; θ_u)) moves the
selected hyperparameters by the implicit function theorem on ∇_s V(s*) = 0:

    ds*/dε = −(∇²_s V)⁻¹ ∂_ε ∇_s V,      ∂_ε ∂V/∂s_k = d_k·G(z) − c_k(z),

the multi-hyperparameter form of docs/math.md §4 over the joint vector Θ = (θ_0, θ_1..θ_U),
with H the joint Hessian (:class:`alloop.multiuser.schur.ArrowSystem`), θ̇_k = dΘ/ds_k the
block tangents, g_V the joint validation gradient and G(z) = g(z) in θ_u's block:

    u   = H⁻¹ g_V
    a_k = H⁻¹ H_V θ̇_k                    (H_V: validation Hessian, block-diagonal per user)
    b_k = H⁻¹ ∇_Θ ρ_k u                  (ρ_k = ∂_{s_k}∇F: ∇ρ_0 = λ_0 M on θ_0; ∇ρ_1 = λ_1 T,
                                           T the Hessian of Σ_u ½‖θ_u − θ_0‖²)
    e_k = H⁻¹ ∇_Θ(uᵀ H(Θ) θ̇_k)           (the third-order term the project keeps, §4)
    d_k = b_k − a_k + e_k,    c_k(z) = u_uᵀ H_z θ̇_{k,u}   (Gauss–Newton, user u's block).

G(z) lives in θ_u's block only, so each candidate needs only the user blocks of d_k, u, θ̇_k:
one forward product per direction, as for SLD. With A = (∇²_s V)⁻¹ the mixed directions
d̃_m = Σ_k A_mk d_k and θ̃_m = Σ_k A_mk θ̇_k (c is bilinear in u and θ̇) give each component

    (ds*/dε)_m = −(d̃_m·g(z) − uᵀH_z θ̃_m),

which is :func:`alloop.regularity.heuristics.s_influence` with V'' = 1, and

    SSI(u, x) = ‖ds*/dε‖²,   unlabeled: Σ_m E_y[(d̃_m·g)²] + c̃_m²   (E_y[g] = 0)

(:func:`alloop.regularity.heuristics.ssi` summed over m). Per fit: the tangents, one block solve
with 1 + 3m right-hand sides (u, a_k, then b_k, e_k), and 2m warm-started refits for the
central difference ∇²_s V — all linear in the number of users.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.tensors import DTYPE
from alloop.multiuser.outputs import (
    per_user_loss_gradients,
    per_user_outputs,
    per_user_outputs_many,
)
from alloop.multiuser.queries import BATCH_SIZE, _hyper_indices, candidate_inputs
from alloop.multiuser.regularity import _validation_tensors, _value_and_gradient
from alloop.multiuser.tangent import HYPERPARAMETERS
from alloop.regularity import heuristics as hx

if TYPE_CHECKING:
    from alloop.multiuser.model import HierarchicalGLM

__all__ = [
    "MultiUserSSIDirections",
    "s_influence_scores",
    "ssi_directions",
    "ssi_scores",
    "validation_curvature",
]


@dataclass(frozen=True)
class MultiUserSSIDirections:
    """The per-fit quantities of multi-user SSI (user blocks only; see the module docstring).

    Attributes
    ----------
    hyperparameters : tuple of str
        The selected hyperparameters, in the order of the leading axes below.
    tangents : torch.Tensor, shape (m, U, p)
        θ̇_k per user.
    u : torch.Tensor, shape (U, p)
        H⁻¹g_V per user.
    d : torch.Tensor, shape (m, U, p)
        b_k − a_k + e_k per user.
    curvature : numpy.ndarray, shape (m, m)
        The ∇²_s V used (symmetrised central difference; eigenvalues floored when s* is at a
        bound or the difference is not positive definite).
    raw_curvature : numpy.ndarray, shape (m, m)
        The symmetrised central difference itself.
    value : float
        V(s*).
    hypergradient : numpy.ndarray, shape (m,)
        ∇_s V at the fit (≈ 0 at an interior s*).
    """

    hyperparameters: tuple[str, ...]
    tangents: torch.Tensor
    u: torch.Tensor
    d: torch.Tensor
    curvature: np.ndarray
    raw_curvature: np.ndarray
    value: float
    hypergradient: np.ndarray

    def mixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(d̃, θ̃) = (A d, A θ̇) with A = curvature⁻¹, each shape (m, U, p)."""
        A = torch.as_tensor(np.linalg.inv(self.curvature), dtype=DTYPE)
        return (
            torch.einsum("mk,kup->mup", A, self.d),
            torch.einsum("mk,kup->mup", A, self.tangents),
        )


def validation_curvature(
    model: HierarchicalGLM,
    X_val: Any,
    y_val: Any,
    users_val: Any,
    *,
    hyperparameters: Sequence[str] | str = HYPERPARAMETERS,
    fd_step: float = 1e-3,
) -> np.ndarray:
    """∇²_s V by central differences of the hypergradient: 2m warm-started refits, symmetrised.

    Returns an (m, m) array over the chosen hyperparameters (the others held at the fit).
    """
    model._check_fitted()
    idx = _hyper_indices(hyperparameters)
    if not fd_step > 0:
        raise ValueError(f"fd_step must be positive; got {fd_step!r}")
    tensors = _validation_tensors(model, X_val, y_val, users_val)
    rows = []
    for k in idx:
        grads = []
        for sign in (1.0, -1.0):
            s = [model.s0, model.s1]
            s[k] += sign * fd_step
            grads.append(_value_and_gradient(model.refit(*s), *tensors)[1][idx])
        rows.append((grads[0] - grads[1]) / (2 * fd_step))
    raw = np.array(rows)
    return 0.5 * (raw + raw.T)


def _tie_hessian_times(
    v0: torch.Tensor, v_users: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """T v for T the Hessian of Σ_u ½‖θ_u − θ_0‖² over every user (data or not)."""
    return (v0 - v_users).sum(0), v_users - v0


def _third_order_users(
    model: HierarchicalGLM, u_users: torch.Tensor, tangent_users: torch.Tensor
) -> torch.Tensor:
    """User blocks of ∇_Θ(uᵀH(Θ)θ̇) at the fit, shape (U, p).

    uᵀHθ̇ = Σ_i (J_i u_{u_i})ᵀ Λ(f_i) (J_i θ̇_{u_i}) + (penalty terms, constant in Θ); J_i is
    constant for a GLM, so only Λ(f_i(θ_{u_i})) is differentiated (zero for a Gaussian). θ_0
    enters no loss, so its block is zero.
    """
    if model.likelihood == "gaussian":
        return torch.zeros_like(model.thetas_)
    design, users = model._design, model.users_train_
    fdot_u, fdot_t = per_user_outputs_many(design, [u_users, tangent_users], users)

    def form(thetas: torch.Tensor) -> torch.Tensor:
        f = per_user_outputs(design, thetas, users)
        return hx.gauss_newton_form(model.likelihood, f, fdot_u, fdot_t, model.sigma2).sum()

    return torch.func.grad(form)(model.thetas_).detach()


def ssi_directions(
    model: HierarchicalGLM,
    X_val: Any,
    y_val: Any,
    users_val: Any,
    *,
    hyperparameters: Sequence[str] | str = HYPERPARAMETERS,
    fd_step: float = 1e-3,
    bounds: Any = ((-10.0, 10.0), (-10.0, 10.0)),
    curvature_floor: float | None = None,
    third_order: bool = True,
) -> MultiUserSSIDirections:
    """θ̇_k, u, d_k and ∇²_s V of a hierarchical fit at s* (one block solve, 2m refits).

    Parameters
    ----------
    model : HierarchicalGLM
        Fitted at s* (what :func:`alloop.multiuser.select_hyperparameters` returns).
    X_val, y_val, users_val
        The validation split that defines V.
    hyperparameters : "s0", "s1" or both (default)
        Which of s_0, s_1 the validation selects (the others stay fixed).
    fd_step : float
        Step of the central difference of ∇_s V.
    bounds : ((lo0, hi0), (lo1, hi1)) or None
        The search box s* was chosen in. At a bound ∇²_s V is not the curvature of a minimum:
        a warning is given and its eigenvalues are replaced by max(|λ|, floor).
    curvature_floor : float, optional
        Smallest eigenvalue magnitude used; default 1e-6 per validation row.
    third_order : bool
        Keep e_k (exact first order for logistic and softmax users; e = 0 for Gaussian).
    """
    model._check_fitted()
    idx = _hyper_indices(hyperparameters)
    names = tuple(HYPERPARAMETERS[k] for k in idx)
    design, y, users = _validation_tensors(model, X_val, y_val, users_val)
    n_users, p = model.thetas_.shape
    system = model.system()
    tangents = model.tangents()
    lik, s2 = model.likelihood, model.sigma2

    # g_V and H_V θ̇_k: validation rows touch only their user's block.
    f, *fdots = per_user_outputs_many(design, [model.thetas_, *tangents.users[idx]], users)
    r = lk.dnll_df(lik, f, y, s2)
    Lam = lk.output_hessian(lik, f, s2)
    cols_users = [per_user_loss_gradients(design, r, users, n_users)]
    for fdot in fdots:
        hv = torch.einsum("nab,nb->na", Lam, fdot)
        cols_users.append(per_user_loss_gradients(design, hv, users, n_users))
    rhs_users = torch.stack(cols_users, dim=2)  # (U, p, 1 + m)
    rhs0 = torch.zeros(p, rhs_users.shape[2], dtype=DTYPE)
    sol0, sol_users = system.solve(rhs0, rhs_users)
    u0, u_users = sol0[:, 0], sol_users[:, :, 0]
    a_users = sol_users[:, :, 1:]

    # b_k = H⁻¹∇ρ_k u and e_k = H⁻¹∇(uᵀHθ̇_k), all in one more block solve.
    rhs0, rhs_users = [], []
    for k in idx:
        if k == 0:
            rhs0.append(system.lam0 * system.mask * u0)
            rhs_users.append(torch.zeros_like(u_users))
        else:
            t0, tu = _tie_hessian_times(u0, u_users)
            rhs0.append(system.lam1 * t0)
            rhs_users.append(system.lam1 * tu)
    if third_order:
        for k in idx:
            rhs0.append(torch.zeros(p, dtype=DTYPE))
            rhs_users.append(_third_order_users(model, u_users, tangents.users[k]))
    _, be_users = system.solve(torch.stack(rhs0, dim=1), torch.stack(rhs_users, dim=2))
    m = len(idx)
    d = []
    for j in range(m):
        dj = be_users[:, :, j] - a_users[:, :, j]
        if third_order:
            dj = dj + be_users[:, :, m + j]
        d.append(dj)
    d_users = torch.stack(d)

    value, grad = _value_and_gradient(model, design, y, users)
    raw = validation_curvature(
        model, X_val, y_val, users_val, hyperparameters=names, fd_step=fd_step
    )
    curvature = _floored(model, raw, idx, bounds, curvature_floor, design.shape[0])
    for name, x in (("u", u_users), ("d", d_users)):
        if not torch.isfinite(x).all():
            raise FloatingPointError(
                f"SSI's direction {name} of {model!r} is not finite: the joint Hessian is nearly "
                "singular; use larger s0 or s1"
            )
    return MultiUserSSIDirections(
        hyperparameters=names,
        tangents=tangents.users[idx].clone(),
        u=u_users,
        d=d_users,
        curvature=curvature,
        raw_curvature=raw,
        value=value,
        hypergradient=grad[idx],
    )


def _floored(model, raw, idx, bounds, floor, n_val) -> np.ndarray:
    floor = 1e-6 * n_val if floor is None else float(floor)
    at_bound = []
    if bounds is not None:
        s = (model.s0, model.s1)
        for k in idx:
            lo, hi = bounds[k]
            if min(abs(s[k] - lo), abs(s[k] - hi)) <= 1e-9:
                at_bound.append(HYPERPARAMETERS[k])
    eig, vec = np.linalg.eigh(raw)
    if not at_bound and eig.min() > floor:
        return raw
    reason = (
        f"{', '.join(at_bound)} at a bound of the search box {tuple(bounds)}"
        if at_bound
        else f"∇²V has eigenvalues {np.round(eig, 6).tolist()}, not all above the floor {floor:.3g}"
    )
    warnings.warn(
        f"multi-user SSI: {reason}, so s is not an interior minimum of the validation loss; "
        "using eigenvalues max(|λ|, floor). Widen the search box (HierarchicalRegularity(bounds=...), "
        "bounds= of the SSI scores) or check the validation split.",
        RuntimeWarning,
        stacklevel=3,
    )
    return (vec * np.maximum(np.abs(eig), floor)) @ vec.T


def _score(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    y: Any,
    directions: MultiUserSSIDirections,
    batch_size: int,
    signed: bool,
) -> np.ndarray:
    design, uu, labels = candidate_inputs(model, X, users, y, batch_size)
    n = design.shape[0]
    d_mix, t_mix = directions.mixed()
    m = d_mix.shape[0]
    out = torch.zeros(n, m, dtype=DTYPE)
    lik, s2 = model.likelihood, model.sigma2
    for start in range(0, n, batch_size):
        part = slice(start, min(start + batch_size, n))
        f, fu, *rest = per_user_outputs_many(
            design[part], [model.thetas_, directions.u, *d_mix, *t_mix], uu[part]
        )
        yb = None if labels is None else labels[part]
        for j in range(m):
            if signed:
                out[part, j] = hx.s_influence(lik, f, rest[j], fu, rest[m + j], yb, 1.0, s2)
            else:
                out[part, j] = hx.ssi(lik, f, rest[j], fu, rest[m + j], 1.0, yb, s2)
    return out.numpy()


def s_influence_scores(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    y: Any,
    X_val: Any = None,
    y_val: Any = None,
    users_val: Any = None,
    *,
    directions: MultiUserSSIDirections | None = None,
    batch_size: int = BATCH_SIZE,
    **options: Any,
) -> np.ndarray:
    """ds*/dε for labeled candidates (users[i], X[i], y[i]), shape (n, m).

    Column j is the hyperparameter ``directions.hyperparameters[j]``. ``options`` go to
    :func:`ssi_directions` (unless ``directions`` is given).
    """
    if y is None:
        raise ValueError("ds*/dε needs labels y; for pool candidates use ssi_scores(y=None)")
    if directions is None:
        directions = ssi_directions(model, X_val, y_val, users_val, **options)
    return _score(model, X, users, y, directions, batch_size, signed=True)


def ssi_scores(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    X_val: Any = None,
    y_val: Any = None,
    users_val: Any = None,
    y: Any = None,
    *,
    directions: MultiUserSSIDirections | None = None,
    batch_size: int = BATCH_SIZE,
    **options: Any,
) -> np.ndarray:
    """SSI of each (user, item) candidate: ‖ds*/dε‖², or its expectation over y when unlabeled.

    Parameters
    ----------
    model : HierarchicalGLM
        Fitted at s* (see :func:`alloop.multiuser.select_hyperparameters`).
    X : array-like, shape (n, d)
        Candidate items.
    users : array-like of int, shape (n,)
        The user each candidate would be asked of.
    X_val, y_val, users_val
        The validation split (required unless ``directions`` is given).
    y : array-like, optional
        Labels: the labeled variant.
    directions : MultiUserSSIDirections, optional
        Reuse the per-fit quantities of :func:`ssi_directions`.
    batch_size : int
    **options
        To :func:`ssi_directions` (``hyperparameters``, ``fd_step``, ``bounds``,
        ``curvature_floor``, ``third_order``).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Higher = ask first.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM, select_hyperparameters
    >>> rng = np.random.default_rng(7); X = rng.normal(size=(60, 2)); u = np.arange(60) % 3
    >>> W = 0.5 * rng.normal(size=(3, 2)); y = (X * W[u]).sum(1) + rng.normal(size=60)
    >>> model = HierarchicalGLM().fit_users(X[:40], y[:40], u[:40], n_users=4)
    >>> val = (X[40:], y[40:], u[40:])
    >>> fitted, info = select_hyperparameters(model, *val)  # s* first: SSI is ds*/dε
    >>> scores = ssi_scores(fitted, X[:4], [0, 1, 2, 3], *val)  # user 3 has no labels
    >>> scores.shape, bool((scores > 0).all())
    ((4,), True)
    """
    if directions is None:
        directions = ssi_directions(model, X_val, y_val, users_val, **options)
    return _score(model, X, users, y, directions, batch_size, signed=False).sum(axis=1)
