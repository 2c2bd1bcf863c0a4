"""Closed forms of the regularity-tangent query heuristics over a model's output and its JVP.

Everything here is a pure function of the model output ``f`` (shape (n, K)), forward JVPs
``ḟ_v = J_f(x)·v`` of that output along parameter directions ``v`` (shape (n, K)), labels and
scalars. Nothing here knows about models, pools or solvers; :mod:`alloop.regularity.scores`
supplies the directions (θ̇, q, d, u) and the JVPs.

For a per-point loss ℓ(z; θ) = −log p(y | f(x; θ)) the gradient along a direction is
g(x, y)·v = r(f, y)·ḟ_v with r = ∂ℓ/∂f, and over the model's own predictive law

    E_y[(g·v)²] = ḟ_vᵀ Λ ḟ_v,    Λ = E_y[r rᵀ] = ∂²ℓ/∂f²   (Fisher = output Hessian here)

which gives the table of docs/math.md §4:

=============  =====================  ================================================
likelihood     g(x, y)·v              E_y[(g·v)²]
=============  =====================  ================================================
Gaussian       −(y − f)·ḟ_v / σ²      ḟ_v² / σ²
Bernoulli      (p − y)·ḟ_v            p(1 − p)·ḟ_v²
Categorical    p·ḟ_v − ḟ_{v,y}        Σ_k p_k (ḟ_{v,k} − p·ḟ_v)²  (variance of ḟ_v under p)
=============  =====================  ================================================

The heuristics (the project's definitions, docs/math.md §4) are then

* SLD: (g·θ̇)² and E_y[(g·θ̇)²] — θ̇ = dθ*/ds, the regularity tangent;
* STI: (g·q)² and E_y[(g·q)²] — q = H⁻¹θ̂, θ̂ = θ̇/‖θ̇‖;
* SSI: (ds*/dε)² with ds*/dε = −(d·g − c)/V''(s*), d = b − a (+ e, the third-order term of
  :func:`alloop.regularity.ssi_directions`), c = uᵀH_zθ̇ (Gauss–Newton), and its expectation
  (E_y[(d·g)²] + c²)/V''² (E_y[g] = 0 and c does not depend on y).
"""

from __future__ import annotations

import torch

from alloop.models import likelihoods as lk

__all__ = [
    "directional_derivative",
    "expected_squared_directional_derivative",
    "gauss_newton_form",
    "gauss_newton_form_output_grad",
    "s_influence",
    "squared_directional_derivative",
    "ssi",
]


def _softmax(f: torch.Tensor) -> torch.Tensor:
    """Row softmax of (n, K) logits, as exp(f − max f) / Σ.

    The same values as ``torch.softmax(f, 1)`` to rounding, but 2–3× faster on the CPU for the
    narrow rows (K = 10) of a pool: torch's kernel is tuned for long rows, and this is most of
    a softmax GLM's closed-form cost over the pool.
    """
    e = (f - f.amax(dim=1, keepdim=True).detach()).exp()  # out of place: it is differentiated
    return e / e.sum(dim=1, keepdim=True)


def _check_shapes(f: torch.Tensor, *fdots: torch.Tensor) -> None:
    if f.dim() != 2:
        raise ValueError(f"f must have shape (n, K); got {tuple(f.shape)}")
    for fdot in fdots:
        if fdot.shape != f.shape:
            raise ValueError(
                f"an output JVP must have the shape of f {tuple(f.shape)}; got {tuple(fdot.shape)}"
            )


def directional_derivative(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot: torch.Tensor,
    y: torch.Tensor,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """g(x, y)·v = (∂ℓ/∂f)·ḟ_v per point, shape (n,).

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "categorical"}
    f : torch.Tensor, shape (n, K)
        Model output (regression mean or logits).
    fdot : torch.Tensor, shape (n, K)
        Forward JVP ḟ_v = J_f(x)·v of the output along the parameter direction v.
    y : torch.Tensor, shape (n,)
        Encoded labels (floats, 0/1 floats, or class indices).
    sigma2 : float
        Gaussian residual variance σ².

    Examples
    --------
    >>> import torch
    >>> f, fdot = torch.tensor([[0.0]]), torch.tensor([[2.0]])  # p = σ(0) = ½, ḟ_v = 2
    >>> directional_derivative("bernoulli", f, fdot, torch.tensor([1.0])).tolist()  # (½ − 1)·2
    [-1.0]
    """
    _check_shapes(f, fdot)
    if likelihood == "gaussian":
        return -(y - f[:, 0]) * fdot[:, 0] / sigma2
    if likelihood == "bernoulli":
        return (torch.sigmoid(f[:, 0]) - y) * fdot[:, 0]
    if likelihood == "categorical":
        p = _softmax(f)
        return (p * fdot).sum(dim=1) - fdot.gather(1, y.long().view(-1, 1))[:, 0]
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def expected_squared_directional_derivative(
    likelihood: lk.Likelihood, f: torch.Tensor, fdot: torch.Tensor, sigma2: float = 1.0
) -> torch.Tensor:
    """E_{y ~ p(y|f)}[(g(x, y)·v)²] per point, shape (n,), in closed form.

    Examples
    --------
    >>> import torch
    >>> f, fdot = torch.tensor([[0.0]]), torch.tensor([[2.0]])
    >>> expected_squared_directional_derivative("bernoulli", f, fdot).tolist()  # p(1 − p)·ḟ² = ¼·4
    [1.0]
    """
    _check_shapes(f, fdot)
    if likelihood == "gaussian":
        return fdot[:, 0] ** 2 / sigma2
    if likelihood == "bernoulli":
        p = torch.sigmoid(f[:, 0])
        return p * (1.0 - p) * fdot[:, 0] ** 2
    if likelihood == "categorical":
        return _categorical_spread(_softmax(f), fdot)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def squared_directional_derivative(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot: torch.Tensor,
    y: torch.Tensor | None = None,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """(g·v)² with labels ``y`` (labeled variant), E_y[(g·v)²] without (unlabeled variant).

    SLD is this along v = θ̇, STI along v = q = H⁻¹θ̂.
    """
    if y is None:
        return expected_squared_directional_derivative(likelihood, f, fdot, sigma2)
    return directional_derivative(likelihood, f, fdot, y, sigma2) ** 2


def gauss_newton_form(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot_u: torch.Tensor,
    fdot_v: torch.Tensor,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """uᵀ H_z v in Gauss–Newton form (J_z u)ᵀ Λ_z (J_z v) per point, shape (n,).

    Λ = ∂²ℓ/∂f² does not depend on y for these likelihoods, so neither does the result. For
    a model linear in θ (GLMs) this is the exact per-point loss Hessian.
    """
    _check_shapes(f, fdot_u, fdot_v)
    if likelihood == "gaussian":
        return fdot_u[:, 0] * fdot_v[:, 0] / sigma2
    if likelihood == "bernoulli":
        p = torch.sigmoid(f[:, 0])
        return p * (1.0 - p) * fdot_u[:, 0] * fdot_v[:, 0]
    if likelihood == "categorical":
        return _categorical_form(_softmax(f), fdot_u, fdot_v)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def gauss_newton_form_output_grad(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot_u: torch.Tensor,
    fdot_v: torch.Tensor,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """∂/∂f of :func:`gauss_newton_form` per point with ḟ_u, ḟ_v held fixed, shape (n, K).

    For a GLM (J constant) the gradient in θ of Σ_z uᵀH_z(θ)v is X̃ᵀ of this: SSI's
    third-order term without a reverse pass. With ∂p_k/∂f_j = p_k(δ_kj − p_j), the
    categorical form Σ_k p_k u_k v_k − (p·u)(p·v) has the derivative
    p_j[u_j v_j − p·(u∘v) − (u_j − p·u)(p·v) − (p·u)(v_j − p·v)]; the Bernoulli form
    p(1 − p)uv has p(1 − p)(1 − 2p)uv; the Gaussian form does not depend on f.

    Examples
    --------
    >>> import torch
    >>> f, u, v = (torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
    ...            for i in range(3))
    >>> auto = torch.func.grad(lambda t: gauss_newton_form("categorical", t, u, v).sum())(f)
    >>> bool(torch.allclose(gauss_newton_form_output_grad("categorical", f, u, v), auto))
    True
    """
    _check_shapes(f, fdot_u, fdot_v)
    if likelihood == "gaussian":
        return torch.zeros_like(f)
    if likelihood == "bernoulli":
        p = torch.sigmoid(f)
        return p * (1.0 - p) * (1.0 - 2.0 * p) * fdot_u * fdot_v
    if likelihood == "categorical":
        p = _softmax(f)
        uv = fdot_u * fdot_v
        mean_u = (p * fdot_u).sum(dim=1, keepdim=True)
        mean_v = (p * fdot_v).sum(dim=1, keepdim=True)
        mean_uv = (p * uv).sum(dim=1, keepdim=True)
        return p * (uv - mean_uv - (fdot_u - mean_u) * mean_v - mean_u * (fdot_v - mean_v))
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")


def _categorical_form(p: torch.Tensor, fdot_u: torch.Tensor, fdot_v: torch.Tensor) -> torch.Tensor:
    """(J u)ᵀ(diag p − p pᵀ)(J v) per point, from the class probabilities p."""
    mean_u = (p * fdot_u).sum(dim=1)
    mean_v = (p * fdot_v).sum(dim=1)
    return (p * fdot_u * fdot_v).sum(dim=1) - mean_u * mean_v


def _categorical_spread(p: torch.Tensor, fdot: torch.Tensor) -> torch.Tensor:
    """The variance of ḟ under p per point, Σ_k p_k (ḟ_k − p·ḟ)² (centred: no cancellation)."""
    centred = fdot - (p * fdot).sum(dim=1, keepdim=True)
    return (p * centred**2).sum(dim=1)


def s_influence(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot_d: torch.Tensor,
    fdot_u: torch.Tensor,
    fdot_tangent: torch.Tensor,
    y: torch.Tensor,
    curvature: float,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """ds*/dε = −(d·g(z) − c(z)) / V''(s*) for labeled points, shape (n,).

    Parameters
    ----------
    fdot_d, fdot_u, fdot_tangent : torch.Tensor, shape (n, K)
        Output JVPs along d (see :func:`alloop.regularity.ssi_directions`), u = H⁻¹g_V and θ̇.
    curvature : float
        V''(s*), one scalar per fit (already floored by the caller if needed).
    """
    c = gauss_newton_form(likelihood, f, fdot_u, fdot_tangent, sigma2)
    dg = directional_derivative(likelihood, f, fdot_d, y, sigma2)
    return -(dg - c) / curvature


def ssi(
    likelihood: lk.Likelihood,
    f: torch.Tensor,
    fdot_d: torch.Tensor,
    fdot_u: torch.Tensor,
    fdot_tangent: torch.Tensor,
    curvature: float,
    y: torch.Tensor | None = None,
    sigma2: float = 1.0,
) -> torch.Tensor:
    """SSI: (ds*/dε)² with labels, (E_y[(d·g)²] + c²)/V''² without; shape (n,)."""
    if y is not None:
        return s_influence(likelihood, f, fdot_d, fdot_u, fdot_tangent, y, curvature, sigma2) ** 2
    if likelihood == "categorical":  # one softmax for both terms (it is most of their cost)
        _check_shapes(f, fdot_d, fdot_u, fdot_tangent)
        p = _softmax(f)
        c = _categorical_form(p, fdot_u, fdot_tangent)
        return (_categorical_spread(p, fdot_d) + c**2) / curvature**2
    c = gauss_newton_form(likelihood, f, fdot_u, fdot_tangent, sigma2)
    spread = expected_squared_directional_derivative(likelihood, f, fdot_d, sigma2)
    return (spread + c**2) / curvature**2
