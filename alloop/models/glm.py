"""Generalised linear models in torch: linear (Gaussian), logistic, softmax.

Past 400 lines: one model family whose closed forms (Hessian, products, gradients) and three fitting paths (Newton, Newton-CG, L-BFGS) share its parameter layout.

θ is the row-major flattening of a (d + 1, K) matrix whose last row is the intercept
(absent when ``fit_intercept=False``). They are fitted to tight tolerance: damped Newton with
the closed-form Hessian for up to ``newton_max_params`` parameters, full-batch L-BFGS above.
The softmax's Newton steps are solved by preconditioned conjugate gradients on closed-form
Hessian-vector products (``solver="newton-cg"``, the default for it above
``NEWTON_CG_MIN_PARAMS`` parameters): building and factoring the dense (d+1)K-square Hessian
every step was most of an active-learning round (benchmarks/results/peers.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel
from alloop.models.softmax_hessian import softmax_hessian_matmat, softmax_loss_hessian
from alloop.models.tensors import as_dense, matmul

#: GLM solvers; "auto" is Newton-CG for a softmax above NEWTON_CG_MIN_PARAMS parameters, else
#: dense Newton (L-BFGS above ``newton_max_params`` either way).
GLM_SOLVERS = ("auto", "newton", "newton-cg")
NEWTON_CG_MIN_PARAMS = 128


class GLM(DifferentiableModel):
    """A GLM f(x) = xᵀW + b with a chosen likelihood and L2 penalty e^s·½‖W‖².

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "categorical"}
    s : float
        log λ. ``LogisticRegression(C=c)`` is ``s = -log c``; ``Ridge(alpha=a)`` is ``s = log a``.
    fit_intercept : bool
    sigma2 : float or None
        Gaussian residual variance. ``None`` (the default of :class:`LinearGLM`) estimates it
        jointly with θ at each fit: the fixed point θ* = argmin_θ F(θ; s, σ²), σ² = RSS/n
        (docs/math.md §1), so θ* minimises the objective at the σ² every tangent and score
        uses. A number holds it fixed (``sigma2=1`` is scikit-learn's ``Ridge``).
    tol : float
        Stop when the gradient norm of the objective falls below ``tol``.
    solver : {"auto", "newton", "newton-cg"}
        How Newton steps are solved: a dense Cholesky of the Hessian, or conjugate gradients
        with Hessian-vector products preconditioned by the class-diagonal Hessian blocks
        (softmax only). Both stop on the same gradient-norm test.
    device : {"cpu", "cuda", "auto"} or "cuda:<index>"
        Where θ, the training data and the scores' tensors live; "auto" is cuda when present.
    dtype : {"float64", "float32"} or None
        Their precision; None is float64 on the CPU and float32 on a GPU.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> LogisticGLM(s=0.0).fit(X, y).predict(X).tolist()
    [0, 0, 1, 1]
    """

    def __init__(
        self,
        likelihood: lk.Likelihood,
        s: float = 0.0,
        fit_intercept: bool = True,
        sigma2: float | None = 1.0,
        tol: float = 1e-10,
        max_iter: int = 200,
        newton_max_params: int = 4096,
        warm_start: bool = True,
        solver: str = "auto",
        device: str = "cpu",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.place(device, dtype)
        if solver not in GLM_SOLVERS:
            raise ValueError(f"unknown GLM solver {solver!r}; expected one of {GLM_SOLVERS}")
        if likelihood not in lk.LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")
        if not np.isfinite(s):
            raise ValueError(f"s = log λ must be finite; got {s!r}")
        self.likelihood = likelihood
        self.s = float(s)
        self.fit_intercept = fit_intercept
        self.estimate_sigma2 = sigma2 is None
        self.sigma2 = 1.0 if sigma2 is None else float(sigma2)
        self.tol = tol
        self.max_iter = max_iter
        self.newton_max_params = newton_max_params
        self.warm_start = warm_start
        self.solver = solver
        self.n_features_: int | None = None
        self.n_outputs_: int | None = None

    def __repr__(self) -> str:
        where = "" if (self.device.type, self.dtype) == ("cpu", torch.float64) else (
            f", device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r}"
        )
        return f"{type(self).__name__}(likelihood={self.likelihood!r}, s={self.s:.4g}{where})"

    # ----------------------------------------------------------------- layout
    def init_params(self, n_features: int, n_outputs: int) -> torch.Tensor:
        self.n_features_, self.n_outputs_ = n_features, n_outputs
        rows_ = n_features + int(self.fit_intercept)
        return torch.zeros(rows_ * n_outputs, dtype=self.dtype, device=self.device)

    def _warm_start_ok(self, n_features: int, n_outputs: int) -> bool:
        return (
            self.warm_start
            and self.theta_ is not None
            and (self.n_features_, self.n_outputs_) == (n_features, n_outputs)
        )

    def weights(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split θ into W (d, K) and b (K,) (``None`` without intercept)."""
        d, k = self.n_features_, self.n_outputs_
        M = theta.view(d + int(self.fit_intercept), k)
        return (M[:d], M[d]) if self.fit_intercept else (M, None)

    def output(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        W, b = self.weights(theta)
        f = matmul(X, W)
        return f + b if b is not None else f

    def output_jvp(self, theta, X, v):  # noqa: D401 - linear in θ: ḟ_v = f(X; v) without bias
        return self.output(theta, X), self.output(v, X)

    def penalty_mask(self) -> torch.Tensor:
        d, k = self.n_features_, self.n_outputs_
        mask = torch.ones(d + int(self.fit_intercept), k, dtype=self.dtype, device=self.device)
        if self.fit_intercept:
            mask[d] = 0.0
        return mask.reshape(-1)

    def null_space(self) -> torch.Tensor | None:
        """Flat directions of a softmax: adding one vector to every class's parameters.

        The intercepts are always free (unpenalized), so their common shift is flat; with no
        penalty at all (λ = 0, e.g. a validation-only objective) every row is.
        """
        if self.likelihood != "categorical":
            return None
        d, k = self.n_features_, self.n_outputs_
        rows_ = d + int(self.fit_intercept)
        flat_rows = range(rows_) if self.lam == 0.0 else ([d] if self.fit_intercept else [])
        if not flat_rows:
            return None
        Q = torch.zeros(rows_, k, len(flat_rows), dtype=self.dtype, device=self.device)
        for j, row in enumerate(flat_rows):
            Q[row, :, j] = 1.0 / np.sqrt(k)
        return Q.reshape(-1, len(flat_rows))

    # ----------------------------------------------------------------- closed forms
    def design(self, X: torch.Tensor) -> torch.Tensor:
        """X̃ = [X, 1] as a dense tensor (the intercept column appended)."""
        Xd = as_dense(X)
        if self.fit_intercept:
            Xd = torch.cat([Xd, torch.ones(Xd.shape[0], 1, dtype=Xd.dtype, device=Xd.device)], dim=1)
        return Xd

    def per_point_grads(self, theta, X, y):
        """g_i = x̃_i ⊗ ∂ℓ/∂f_i, shape (n, p), in closed form."""
        r = lk.dnll_df(self.likelihood, self.output(theta, X), y, self.sigma2)
        Xd = self.design(X)
        return (Xd.unsqueeze(2) * r.unsqueeze(1)).reshape(Xd.shape[0], -1)

    def loss_hessian(
        self,
        theta: torch.Tensor,
        X: torch.Tensor,
        weights: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Σ_i w_i ∇²_θ ℓ(z_i; θ) = Σ_i w_i (x̃_i x̃_iᵀ) ⊗ Λ_i, shape (p, p).

        For the softmax, Λ_i = diag(p_i) − p_i p_iᵀ; its blocks come from one product over
        the distinct feature and class pairs (:func:`~alloop.models.softmax_hessian.softmax_loss_hessian`).
        ``dtype`` (default: the model's) is the precision the products are summed in; the
        outputs f and Λ_i are computed in the model's own precision first.
        """
        f = self.output(theta, X)
        Xd = self.design(X)
        if self.likelihood == "categorical":
            P = torch.softmax(f, dim=1)
            if dtype is not None:
                Xd, P = Xd.to(dtype), P.to(dtype)
                weights = None if weights is None else weights.to(dtype)
            return softmax_loss_hessian(Xd, P, weights)
        lam = lk.output_hessian(self.likelihood, f, self.sigma2)[:, 0, 0]
        lam = lam if weights is None else lam * weights
        if dtype is not None:
            Xd, lam = Xd.to(dtype), lam.to(dtype)
        return Xd.T @ (lam.unsqueeze(1) * Xd)

    def loss_hessian_vp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(Σ_i ∇²_θ ℓ(z_i; θ)) v = X̃ᵀ(Λ_i ḟ_i) with ḟ = f(X; v) — no p×p matrix, sparse-safe."""
        f = self.output(theta, X)
        fdot = self.output(v, X)
        Lam = lk.output_hessian(self.likelihood, f, self.sigma2)
        return self.output_transpose(X, torch.einsum("ikl,il->ik", Lam, fdot))

    def output_transpose(self, X: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Σ_i x̃_i ⊗ r_i = X̃ᵀR in θ's layout, shape (p,): the VJP of f(X; θ) with R (n, K).
        Sparse-safe."""
        W_r = X.T @ r if not X.is_sparse else torch.sparse.mm(X.t(), r)
        parts = [W_r]
        if self.fit_intercept:
            parts.append(r.sum(0, keepdim=True))
        return torch.cat(parts, dim=0).reshape(-1)

    @property
    def closed_form(self) -> bool:
        """Whether the objective is the GLM's own (the default complexity), so its closed-form
        Hessian, Hessian products and Newton steps apply; a subclass with another C is not."""
        return type(self).complexity is DifferentiableModel.complexity

    def hessian(
        self,
        theta: torch.Tensor,
        X: torch.Tensor,
        s: float | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """∇²_θ F(θ; s) on (X, ·): the loss Hessian plus e^s·∇²C for the default C.

        ``dtype`` (default: the model's) is the precision it is assembled in, e.g. float32 for
        the preconditioner of :class:`alloop.linalg.Inverse`'s mixed-precision solves.
        """
        s = self.s if s is None else s
        H = self.loss_hessian(theta, X, dtype=dtype)
        mask = self.penalty_mask().to(H.dtype)
        H.diagonal().add_(float(np.exp(s)) * mask)  # no (p, p) diagonal matrix
        return H

    def hessian_matmat(
        self, theta: torch.Tensor, X: torch.Tensor, s: float | None = None
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """V ↦ ∇²_θ F(θ; s) V for one vector (p,) or several (p, m), in the model's precision,
        never forming the matrix: the same matrix as :meth:`hessian`, as products.

        The outputs (for the softmax, the probabilities P) are computed once here; each
        product then costs two (n, d+1)·(d+1, K·m) matrix products
        (:func:`~alloop.models.softmax_hessian.softmax_hessian_matmat`).
        """
        return self._hessian_parts(theta, X, s, None)[1]

    def hessian_and_matmat(
        self, theta: torch.Tensor, X: torch.Tensor, dtype: torch.dtype, s: float | None = None
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """(:meth:`hessian` assembled in ``dtype``, :meth:`hessian_matmat`) from one pass of
        the outputs: a low-precision matrix to precondition with, and the exact products."""
        return self._hessian_parts(theta, X, s, dtype)  # type: ignore[return-value]

    def _hessian_parts(self, theta, X, s, dtype):
        lam = float(np.exp(self.s if s is None else s))
        mask = self.penalty_mask()
        f = self.output(theta, X)
        Xd = self.design(X)
        H = None
        if self.likelihood == "categorical":
            P = torch.softmax(f, dim=1)
            if dtype is not None:
                H = softmax_loss_hessian(Xd.to(dtype), P.to(dtype))

            def loss_part(V: torch.Tensor) -> torch.Tensor:
                return softmax_hessian_matmat(Xd, P, V)

        else:
            w = lk.output_hessian(self.likelihood, f, self.sigma2)[:, 0, 0]
            if dtype is not None:
                H = Xd.to(dtype).T @ (w.to(dtype).unsqueeze(1) * Xd.to(dtype))

            def loss_part(V: torch.Tensor) -> torch.Tensor:
                return Xd.T @ (w.unsqueeze(1) * (Xd @ V) if V.dim() == 2 else w * (Xd @ V))

        if H is not None:
            H.diagonal().add_(lam * mask.to(H.dtype))

        def product(V: torch.Tensor) -> torch.Tensor:
            return loss_part(V) + lam * (mask if V.dim() == 1 else mask.unsqueeze(1)) * V

        return H, product

    # ----------------------------------------------------------------- fitting
    def _fit_params(self, theta0, X, y):
        p = theta0.numel()
        if p <= self.newton_max_params and self.closed_form:
            use_cg = self.solver == "newton-cg" or (
                self.solver == "auto" and p >= NEWTON_CG_MIN_PARAMS
            )
            if use_cg and self.likelihood == "categorical":
                return self._newton_cg(theta0, X, y)
            return self._newton(theta0, X, y)
        return self._lbfgs(theta0, X, y)

    def _gauge_fix(self) -> torch.Tensor:
        Q = self.null_space()
        p = self.init_params_size()
        return torch.zeros(p, p, dtype=self.dtype, device=self.device) if Q is None else Q @ Q.T

    def init_params_size(self) -> int:
        return (self.n_features_ + int(self.fit_intercept)) * self.n_outputs_

    def _newton(self, theta, X, y):
        gauge = self._gauge_fix()
        f = lambda t: self.objective(t, X, y)  # noqa: E731
        value = f(theta)
        scale = max(1.0, float(X.shape[0]))
        Xd = self.design(X)
        lam_mask = self.lam * self.penalty_mask()
        previous = None
        for _ in range(self.max_iter):
            # closed-form gradient X̃ᵀ ∂ℓ/∂f + λ·mask·θ: no autograd tape in the inner loop
            r = lk.dnll_df(self.likelihood, self.output(theta, X), y, self.sigma2)
            grad = (Xd.T @ r).reshape(-1) + lam_mask * theta
            gnorm = float(grad.norm())
            if _converged(gnorm, previous, self.tol, scale):
                break
            previous = gnorm
            L = cholesky_with_jitter(self.hessian(theta, X) + gauge, what=f"the Hessian of {self!r}")
            step = torch.cholesky_solve(grad.unsqueeze(1), L)[:, 0]
            decrease = float(grad @ step)
            accepted = _armijo(f, theta, value, step, decrease)
            if accepted is None:
                break  # no representable decrease left: θ is at the numerical optimum
            theta, value = accepted
        return theta

    def _newton_cg(self, theta, X, y):
        """Damped Newton for the softmax with each step from preconditioned CG.

        H v = X̃ᵀ(P∘V̇ − P∘(P∘V̇)1 1ᵀ) + λ·mask∘V with V̇ = X̃V costs two (n, d+1)·(d+1, K)
        products; the preconditioner is H's class-diagonal blocks X̃ᵀdiag(p_c(1 − p_c))X̃ + λD,
        K Cholesky factors of (d+1)-square matrices, refreshed every step. The inner tolerance
        min(0.1, ‖g‖/‖g₀‖, ‖g‖^½)·‖g‖ makes the outer iteration quadratic, as exact Newton is. It
        stops on the same test as :meth:`_newton` (:func:`_converged`).
        """
        Xd = self.design(X)
        n, d1 = Xd.shape
        k = self.n_outputs_
        Y = torch.nn.functional.one_hot(y.long(), k).to(Xd.dtype)
        lam_mask = (self.lam * self.penalty_mask()).view(d1, k)
        Q = self.null_space()  # columns e_row ⊗ 1/√K: projecting them out centres those rows
        flat = None if Q is None else (Q.view(d1, k, -1).abs().sum((1, 2)) > 0).to(Xd.dtype)

        def project(V):
            return V if flat is None else V - flat.unsqueeze(1) * V.mean(1, keepdim=True)

        f = lambda t: self.objective(t, X, y)  # noqa: E731
        value = f(theta)
        scale = max(1.0, float(n))
        g0 = previous = None
        T = theta.view(d1, k)
        eye = torch.eye(d1, dtype=Xd.dtype, device=Xd.device)
        for _ in range(self.max_iter):
            P = torch.softmax(Xd @ T, dim=1)
            G = Xd.T @ (P - Y) + lam_mask * T
            gnorm = float(G.norm())
            if _converged(gnorm, previous, self.tol, scale):
                break
            previous = gnorm
            g0 = gnorm if g0 is None else g0
            W = P * (1.0 - P)
            blocks = torch.einsum("ni,nc,nj->cij", Xd, W, Xd) + torch.diag_embed(lam_mask.T)
            jitter = 1e-10 * float(blocks.diagonal(dim1=1, dim2=2).max()) + 1e-300
            L, _ = torch.linalg.cholesky_ex(blocks + jitter * eye)

            def hvp(V, P=P):
                PV = P * (Xd @ V)
                return Xd.T @ (PV - P * PV.sum(1, keepdim=True)) + lam_mask * V

            def precond(R, L=L):
                return project(torch.cholesky_solve(R.T.unsqueeze(2), L)[:, :, 0].T)

            forcing = min(0.1, gnorm / g0, gnorm**0.5)
            step = _pcg(hvp, precond, project(G), forcing * gnorm, 2 * d1 * k)
            step_flat = step.reshape(-1)
            decrease = float((G * step).sum())
            if decrease <= 0:  # CG lost positive curvature in rounding: take the gradient step
                step_flat, decrease = G.reshape(-1), gnorm**2
            accepted = _armijo(f, theta, value, step_flat, decrease)
            if accepted is None:
                break
            theta, value = accepted
            T = theta.view(d1, k)
        return theta

    def _lbfgs(self, theta, X, y):
        theta = theta.clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [theta], lr=1.0, max_iter=self.max_iter * 10, tolerance_grad=self.tol,
            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad()
            value = self.objective(theta, X, y)
            value.backward()
            return value

        opt.step(closure)
        g = torch.func.grad(lambda t: self.objective(t, X, y))(theta.detach())
        if g.norm() > 1e3 * self.tol * max(1.0, X.shape[0]):
            warnings.warn(
                f"{self!r}: L-BFGS stopped with gradient norm {g.norm():.2e}; raise max_iter",
                RuntimeWarning,
                stacklevel=3,
            )
        return theta.detach()


def _armijo(f, theta, value, step, decrease):
    """Armijo backtracking along −step: ``(θ − t·step, f(θ − t·step))`` for the first accepted t
    (halving from 1; a full step within rounding of ``value`` is accepted), or None when no
    representable decrease is left (θ is at the numerical optimum)."""
    t = 1.0
    while t > 1e-12:
        cand = theta - t * step
        new = f(cand)
        if new <= value - 1e-4 * t * decrease or (
            t == 1.0 and new <= value + 1e-13 * abs(float(value))
        ):
            return cand, new
        t *= 0.5
    return None


def _converged(gnorm: float, previous: float | None, tol: float, scale: float) -> bool:
    """‖g‖ ≤ tol·n, then polished while a Newton step still shrinks ‖g‖ fourfold.

    Quadratic convergence takes ‖g‖ from tol·n to rounding in one or two more steps, so θ* is
    the optimum to rounding whatever the start: a warm start (last round's θ*) and a cold one
    give the same θ*, where stopping at tol·n alone left up to ~4e-10 between them.
    """
    if gnorm > tol * scale:
        return False
    return gnorm <= tol or (previous is not None and gnorm > 0.25 * previous)


def _pcg(hvp, precond, b: torch.Tensor, atol: float, max_iter: int) -> torch.Tensor:
    """Preconditioned CG for H x = b (matrix-shaped x) to ‖r‖ ≤ atol; stops on lost curvature."""
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    p = z.clone()
    rz = float((r * z).sum())
    for _ in range(max_iter):
        if float(r.norm()) <= atol or not rz > 0:  # rz = 0: nothing left the preconditioner sees
            break
        Ap = hvp(p)
        curvature = float((p * Ap).sum())
        if curvature <= 0:
            break
        alpha = rz / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        z = precond(r)
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


class LinearGLM(GLM):
    """Ridge regression with a Gaussian likelihood: ½Σ(y − f)²/σ² + e^s·½‖w‖².

    σ² is estimated jointly with θ by default (``sigma2=None``, see :class:`GLM`);
    ``LinearGLM(s=log(a), sigma2=1.0)`` is scikit-learn's ``Ridge(alpha=a)``.
    """

    def __init__(self, s: float = 0.0, sigma2: float | None = None, **kwargs) -> None:
        super().__init__("gaussian", s=s, sigma2=sigma2, **kwargs)


class LogisticGLM(GLM):
    """Binary logistic regression: Σ cross-entropy + e^s·½‖w‖²."""

    def __init__(self, s: float = 0.0, **kwargs) -> None:
        super().__init__("bernoulli", s=s, **kwargs)


class SoftmaxGLM(GLM):
    """Multinomial logistic regression with one logit per class."""

    def __init__(self, s: float = 0.0, **kwargs) -> None:
        super().__init__("categorical", s=s, **kwargs)
