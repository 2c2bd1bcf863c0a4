"""Hierarchical GLM: per-user parameters θ_u tied to a global θ_0, fitted by block Newton.

(Over 400 lines: one model whose fit, curvature cache and predictions share private state.)

The objective (docs/math.md §5), with λ_0 = e^{s_0} and λ_1 = e^{s_1},

    F(θ_0, θ_1..θ_U) = Σ_u [Σ_{i∈D_u} ℓ(z_i; θ_u) + λ_1·½‖θ_u − θ_0‖²] + λ_0·½‖Mθ_0‖²,

where ℓ is a GLM likelihood (Gaussian, Bernoulli, categorical; :mod:`alloop.models.likelihoods`)
and every θ has the layout of :class:`alloop.models.GLM` (row-major (d + 1, K), intercept row
last).

**Intercepts.** Each user's intercept is tied to the global intercept by the λ_1 term like any
other parameter (users' offsets are partially pooled: a user with one rating does not get that
rating as their offset), and the global intercept is *not* penalized by λ_0 (M = 0 there), as
a plain GLM leaves its bias free. So the global intercept is set by the data, and a user with
no data predicts with the global model, intercept included. For the softmax, shifting every
intercept of θ_0 and of all θ_u by the same constant leaves F unchanged; θ_0's intercepts are
kept summing to zero, as in :class:`alloop.models.SoftmaxGLM`.

**Fitting.** Damped Newton on the joint objective, where each Newton system is solved by
blocks (:class:`alloop.multiuser.schur.ArrowSystem`): one small factorization per user with
data, one p×p Schur complement — time and memory linear in the number of users. The Gaussian
objective is quadratic, so one step lands on the minimum. Users without data are not
iterated: at the optimum θ_u = θ_0 exactly, and they are set so. Refits start from the last
fit's parameters (new users from θ_0), so the rounds of an active-learning loop are warm
started.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.glm import GLM
from alloop.models.tensors import DTYPE, as_dense, as_features
from alloop.multiuser.outputs import (
    per_user_loss_gradients,
    per_user_loss_hessians,
    per_user_outputs,
)
from alloop.multiuser.schur import ArrowSystem

__all__ = ["HierarchicalGLM"]

# --------------------------------------------------------------------------- the model
class HierarchicalGLM:
    """Per-user GLMs tied to a global GLM; hyperparameters s_0 (global) and s_1 (user deviation).

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "categorical"}
        Linear (ridge), logistic or softmax regression for every user.
    s0 : float
        log λ_0: strength of the global penalty λ_0·½‖Mθ_0‖² (intercepts excluded).
    s1 : float
        log λ_1: how far users may deviate, λ_1·½‖θ_u − θ_0‖² (intercepts included).
    fit_intercept : bool
    sigma2 : float
        Gaussian residual variance σ² (fixed: it scales the loss against λ_0 and λ_1).
    tol : float
        Stop when the joint gradient norm is below ``tol``·max(1, n).
    max_iter : int
        Newton iterations at most.
    warm_start : bool
        Start each fit from the previous one's parameters when the layout matches.
    n_users : int, optional
        U, the number of users, for :meth:`fit` on pair rows (users without labels yet still
        get a θ_u = θ_0). Default: ``max(users) + 1`` of the data.
    hyperparameters : "s0", "s1" or both (default)
        The entries of s the ``sld``/``sti``/``ssi`` strategies score (e.g. "s1": SSI measures
        the influence on the selected s_1 alone).

    Attributes
    ----------
    theta0_ : torch.Tensor, shape (p,)
        The global parameters θ_0.
    thetas_ : torch.Tensor, shape (U, p)
        Per-user parameters θ_u (rows of users without data equal θ_0).
    counts_ : np.ndarray of int, shape (U,)
        Labeled rows per user.
    n_users_, n_features_, n_outputs_, classes_
    X_train_, y_train_, users_train_ : torch.Tensor
        The training data (features, encoded labels, user index per row).
    n_iter_ : int
        Newton iterations of the last fit.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); users = np.repeat([0, 1, 2], 20)
    >>> y = X @ np.array([1.0, -1.0, 0.5]) + 0.3 * users + 0.1 * rng.normal(size=60)
    >>> model = HierarchicalGLM("gaussian", s0=0.0, s1=1.0).fit_users(X, y, users, n_users=4)
    >>> model.thetas_.shape, bool((model.thetas_[3] == model.theta0_).all())
    (torch.Size([4, 4]), True)

    As a model of the loop, on (user, item) pair rows ``[user, x...]``
    (:func:`alloop.multiuser.pool.pair_rows`), with s = (s_0, s_1):

    >>> from alloop.multiuser.pool import pair_rows
    >>> model = HierarchicalGLM("gaussian", n_users=4).with_s([0.0, 1.0])
    >>> model.fit(pair_rows(X, users), y).s.tolist()
    [0.0, 1.0]
    """

    def __init__(
        self,
        likelihood: lk.Likelihood = "gaussian",
        s0: float = 0.0,
        s1: float = 0.0,
        *,
        fit_intercept: bool = True,
        sigma2: float = 1.0,
        tol: float = 1e-10,
        max_iter: int = 100,
        warm_start: bool = True,
        n_users: int | None = None,
        hyperparameters: str | tuple[str, ...] = ("s0", "s1"),
    ) -> None:
        if likelihood not in lk.LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")
        for name, value in (("s0", s0), ("s1", s1)):
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite; got {value!r}")
        if not sigma2 > 0:
            raise ValueError(f"sigma2 must be positive; got {sigma2!r}")
        self.likelihood = likelihood
        self.s0, self.s1 = float(s0), float(s1)
        self.fit_intercept = fit_intercept
        self.sigma2 = float(sigma2)
        self.tol, self.max_iter, self.warm_start = tol, max_iter, warm_start
        if n_users is not None and not (isinstance(n_users, int | np.integer) and n_users >= 1):
            raise ValueError(f"n_users must be a positive integer; got {n_users!r}")
        self.n_users = None if n_users is None else int(n_users)
        names = (hyperparameters,) if isinstance(hyperparameters, str) else tuple(hyperparameters)
        if not names or set(names) - {"s0", "s1"}:
            raise ValueError(f"hyperparameters must be 's0', 's1' or both; got {hyperparameters!r}")
        self.hyperparameters = names
        self.theta0_: torch.Tensor | None = None
        self.thetas_: torch.Tensor | None = None
        self.classes_: np.ndarray | None = None
        self.n_features_: int | None = None
        self.n_outputs_: int | None = None
        self._system: ArrowSystem | None = None
        self._tangents: Any = None
        self._mask: torch.Tensor | None = None
        self._gaussian_L: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"HierarchicalGLM(likelihood={self.likelihood!r}, s0={self.s0:.4g}, s1={self.s1:.4g})"
        )

    # ------------------------------------------------------------------ structure
    @property
    def task(self) -> str:
        return "regression" if self.likelihood == "gaussian" else "classification"

    @property
    def lam0(self) -> float:
        """λ_0 = e^{s_0}."""
        return float(np.exp(self.s0))

    @property
    def lam1(self) -> float:
        """λ_1 = e^{s_1}."""
        return float(np.exp(self.s1))

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.thetas_.shape[0]

    def glm_view(self) -> GLM:
        """A parameterless GLM with this model's layout: design, penalty mask, labels."""
        view = GLM(self.likelihood, fit_intercept=self.fit_intercept, sigma2=self.sigma2)
        view.n_features_, view.n_outputs_ = self.n_features_, self.n_outputs_
        view.classes_ = self.classes_
        return view

    def user_model(self, user: int) -> GLM:
        """User ``user``'s GLM at θ_u (for predict, predict_proba and single-model tools).

        Its ``s`` is s_1, but note its objective would center the penalty at 0, not at θ_0:
        use it to predict, not to refit.
        """
        self._check_fitted()
        if not 0 <= int(user) < self.n_users_:
            raise IndexError(f"user {user!r} is out of range [0, {self.n_users_})")
        view = self.glm_view()
        view.s = self.s1
        view.theta_ = self.thetas_[int(user)].clone()
        return view

    def penalty_mask(self) -> torch.Tensor:
        """M: 1 on weights, 0 on intercepts (the λ_0 penalty)."""
        if self._mask is None:
            self._mask = self.glm_view().penalty_mask()
        return self._mask

    def null_space(self) -> torch.Tensor | None:
        """The flat softmax-intercept direction of θ_0 (shape (p, 1)), else ``None``."""
        return self.glm_view().null_space()

    @property
    def s(self) -> np.ndarray:
        """The hyperparameter vector (s_0, s_1) (the loop's ``model.s``)."""
        return np.array([self.s0, self.s1])

    def with_s(self, s: Any) -> HierarchicalGLM:
        """A copy at s = (s_0, s_1); the fitted state is kept as a warm start."""
        values = np.asarray(s, dtype=np.float64).reshape(-1)
        if values.shape != (2,) or not np.isfinite(values).all():
            raise ValueError(f"s of a HierarchicalGLM is the finite pair (s0, s1); got {s!r}")
        new = copy.copy(self)
        new.s0, new.s1 = float(values[0]), float(values[1])
        new._system = new._tangents = None
        return new

    def clone(self) -> HierarchicalGLM:
        """An unfitted copy with the same settings and (s_0, s_1)."""
        return HierarchicalGLM(
            self.likelihood, self.s0, self.s1, fit_intercept=self.fit_intercept,
            sigma2=self.sigma2, tol=self.tol, max_iter=self.max_iter,
            warm_start=self.warm_start, n_users=self.n_users,
            hyperparameters=self.hyperparameters,
        )

    def refit(self, s0: float, s1: float) -> HierarchicalGLM:
        """A copy fitted at (s0, s1) on the same training data, warm-started from this fit."""
        self._check_fitted()
        new = self.with_s((s0, s1))
        # Same rows: a Gaussian model's loss Hessians (free of θ and s) carry over.
        new._fit_tensors(
            self.X_train_, self.y_train_, self.users_train_, self.n_users_, self._gaussian_L
        )
        return new

    # ------------------------------------------------------------------ data
    def _check_fitted(self) -> None:
        if self.theta0_ is None:
            raise RuntimeError("HierarchicalGLM is not fitted yet; call fit(X, y) or fit_users first")

    def user_index(self, users: Any, n_rows: int, n_users: int | None = None) -> torch.Tensor:
        """``users`` checked (one integer in [0, n_users) per row) as a long tensor."""
        n_users = self.n_users_ if n_users is None else n_users
        users = np.asarray(users)
        if users.shape != (n_rows,):
            raise ValueError(
                f"users must hold one user index per row ({n_rows}); got shape {users.shape}"
            )
        if users.size and not np.issubdtype(users.dtype, np.integer):
            raise ValueError(f"users must be integer indices 0..n_users-1; got dtype {users.dtype}")
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(
                f"user indices must lie in [0, {n_users}); got range "
                f"[{users.min()}, {users.max()}] — pass n_users= large enough"
            )
        return torch.as_tensor(users.astype(np.int64))

    def encode_y(self, y: Any) -> torch.Tensor:
        """Raw labels as the likelihood expects them (floats, 0/1, class indices)."""
        y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        return self.glm_view().encode_y(y)

    def design(self, X: Any) -> torch.Tensor:
        """X̃ = [X, 1] as a dense float64 tensor."""
        return self.glm_view().design(as_dense(as_features(X)))

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, classes: Any = None) -> HierarchicalGLM:
        """Fit on (user, item) pair rows ``[user, x...]`` (the loop's model protocol).

        Column 0 of ``X`` holds each row's user index (:func:`alloop.multiuser.pool.pair_rows`);
        ``n_users`` of the constructor sets U.
        """
        from alloop.multiuser.pool import split_pairs

        features, users = split_pairs(X)
        return self.fit_users(features, y, users, n_users=self.n_users, classes=classes)

    def fit_users(
        self, X: Any, y: Any, users: Any, n_users: int | None = None, classes: Any = None
    ) -> HierarchicalGLM:
        """Fit θ_0 and every θ_u on rows (X, y) owned by ``users``.

        Parameters
        ----------
        X : array-like, shape (n, d)
            Features (dense; a sparse matrix is densified).
        y : array-like, shape (n,)
            Labels (raw).
        users : array-like of int, shape (n,)
            User index of each row, in [0, n_users).
        n_users : int, optional
            U, the number of users (users with no rows get θ_u = θ_0). Defaults to
            ``max(users) + 1``, or the previous fit's U if larger.
        classes : array-like, optional
            Every class (classification): declare them up front when some are not yet labeled.
        """
        Xt = as_dense(as_features(X))
        y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if Xt.shape[0] != len(y):
            raise ValueError(f"X has {Xt.shape[0]} rows but y has {len(y)} labels")
        if len(y) == 0:
            raise ValueError(
                "cannot fit on an empty labeled set: the global intercept needs at least one "
                "labeled row (any user)"
            )
        users_arr = np.asarray(users)
        seen = int(users_arr.max()) + 1 if users_arr.size else 0
        previous = self.thetas_.shape[0] if self.thetas_ is not None else 0
        n_users = max(seen, previous) if n_users is None else int(n_users)
        u = self.user_index(users_arr, Xt.shape[0], n_users)
        if self.task == "classification":
            self.classes_ = np.unique(y) if classes is None else np.asarray(sorted(classes))
            if self.classes_.size < 2:
                raise ValueError(
                    f"classification needs at least two classes; got {self.classes_.tolist()!r}"
                )
            if self.likelihood == "bernoulli" and self.classes_.size != 2:
                raise ValueError(
                    "a Bernoulli (logistic) model takes exactly 2 classes; got "
                    f"{self.classes_.size}. "
                    "Use likelihood='categorical' for multi-class data."
                )
        k = len(self.classes_) if self.likelihood == "categorical" else 1
        if self.theta0_ is None or (self.n_features_, self.n_outputs_) != (Xt.shape[1], k):
            self.theta0_ = self.thetas_ = None  # a new layout: no warm start
        self.n_features_, self.n_outputs_ = Xt.shape[1], k
        self._mask = None
        return self._fit_tensors(Xt, self.encode_y(y), u, n_users)

    def _fit_tensors(
        self,
        Xt: torch.Tensor,
        yt: torch.Tensor,
        users: torch.Tensor,
        n_users: int,
        gaussian_loss_hessians: torch.Tensor | None = None,
    ) -> HierarchicalGLM:
        self._gaussian_L = gaussian_loss_hessians
        view = self.glm_view()
        design = view.design(Xt)
        p = design.shape[1] * self.n_outputs_
        counts = torch.bincount(users, minlength=n_users)
        active = torch.nonzero(counts).flatten()
        local = torch.full((n_users,), -1, dtype=torch.long)
        local[active] = torch.arange(active.numel())
        local_users = local[users]

        warm = self.warm_start and self.theta0_ is not None and self.theta0_.numel() == p
        theta0 = self.theta0_.clone() if warm else torch.zeros(p, dtype=DTYPE)
        thetas = theta0.expand(n_users, p).clone()
        if warm:
            keep = min(n_users, self.thetas_.shape[0])
            thetas[:keep] = self.thetas_[:keep]
        theta0, theta_active, n_iter = self._newton(
            theta0, thetas[active].clone(), design, yt, local_users
        )
        thetas = theta0.expand(n_users, p).clone()
        thetas[active] = theta_active

        self.theta0_, self.thetas_, self.n_iter_ = theta0, thetas, n_iter
        self.counts_ = counts.numpy()
        self.X_train_, self.y_train_, self.users_train_ = Xt, yt, users
        self._design, self._active, self._local_users = design, active, local_users
        self._system = self._tangents = None
        return self

    def _objective(self, theta0, theta_active, design, yt, local_users) -> float:
        f = per_user_outputs(design, theta_active, local_users)
        loss = lk.nll(self.likelihood, f, yt, self.sigma2).sum()
        tie = 0.5 * self.lam1 * ((theta_active - theta0) ** 2).sum()
        glob = 0.5 * self.lam0 * (self.penalty_mask() * theta0**2).sum()
        return float(loss + tie + glob)

    def _gradient(self, theta0, theta_active, design, yt, local_users):
        f = per_user_outputs(design, theta_active, local_users)
        r = lk.dnll_df(self.likelihood, f, yt, self.sigma2)
        g_users = per_user_loss_gradients(design, r, local_users, theta_active.shape[0])
        deviation = theta_active - theta0
        g_users = g_users + self.lam1 * deviation
        g0 = self.lam0 * self.penalty_mask() * theta0 - self.lam1 * deviation.sum(0)
        return g0, g_users, f

    def _system_at(self, theta_active, design, local_users, f, active, n_users) -> ArrowSystem:
        if self._gaussian_L is not None:
            L = self._gaussian_L
        else:
            lam = lk.output_hessian(self.likelihood, f, self.sigma2)
            L = per_user_loss_hessians(design, lam, local_users, theta_active.shape[0])
            if self.likelihood == "gaussian":  # Λ = 1/σ²: the same at every θ and s
                self._gaussian_L = L
        return ArrowSystem(
            L, active, n_users, self.lam0, self.lam1, self.penalty_mask(), self.null_space()
        )

    def _newton(self, theta0, theta_active, design, yt, local_users):
        n_active = theta_active.shape[0]
        everyone = torch.arange(n_active)
        null = self.null_space()
        if null is not None:  # the gauge: θ_0's softmax intercepts sum to zero
            shift = null @ (null.T @ theta0)
            theta0, theta_active = theta0 - shift, theta_active - shift
        value = self._objective(theta0, theta_active, design, yt, local_users)
        scale = max(1.0, float(design.shape[0]))
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 - reported as n_iter_
            g0, g_users, f = self._gradient(theta0, theta_active, design, yt, local_users)
            norm = float(torch.sqrt((g0**2).sum() + (g_users**2).sum()))
            if norm <= self.tol * scale:
                n_iter -= 1
                break
            system = self._system_at(theta_active, design, local_users, f, everyone, n_active)
            step0, step_users = system.solve(g0, g_users)
            decrease = float(g0 @ step0 + (g_users * step_users).sum())
            t = 1.0
            while t > 1e-12:  # Armijo backtracking; a full step within rounding is accepted
                cand0, cand_users = theta0 - t * step0, theta_active - t * step_users
                new = self._objective(cand0, cand_users, design, yt, local_users)
                if new <= value - 1e-4 * t * decrease or (
                    t == 1.0 and new <= value + 1e-13 * abs(value)
                ):
                    break
                t *= 0.5
            else:
                break  # no representable decrease left: at the numerical optimum
            theta0, theta_active, value = cand0, cand_users, new
        return theta0, theta_active, n_iter

    # ------------------------------------------------------------------ curvature
    def system(self) -> ArrowSystem:
        """The factorized joint Hessian at the fitted (θ_0, θ_u) (cached per fit)."""
        self._check_fitted()
        if self._system is None:
            f = per_user_outputs(self._design, self.thetas_, self.users_train_)
            self._system = self._system_at(
                self.thetas_[self._active],
                self._design,
                self._local_users,
                f,
                self._active,
                self.n_users_,
            )
        return self._system

    def objective(self, theta0: torch.Tensor, thetas: torch.Tensor) -> float:
        """F(θ_0, θ_1..θ_U) on the training data at the model's (s0, s1)."""
        self._check_fitted()
        f = per_user_outputs(self._design, thetas, self.users_train_)
        loss = lk.nll(self.likelihood, f, self.y_train_, self.sigma2).sum()
        tie = 0.5 * self.lam1 * ((thetas - theta0) ** 2).sum()
        glob = 0.5 * self.lam0 * (self.penalty_mask() * theta0**2).sum()
        return float(loss + tie + glob)

    def tangents(self):
        """dθ_0/ds and dθ_u/ds for s ∈ (s_0, s_1) (cached per fit); see :mod:`.tangent`."""
        from alloop.multiuser.tangent import block_tangents

        if self._tangents is None:
            self._tangents = block_tangents(
                self.system(), self.theta0_, self.thetas_, self.penalty_mask()
            )
        return self._tangents

    # ------------------------------------------------------------------ prediction
    def decision(self, X: Any, users: Any) -> torch.Tensor:
        """f(x_i; θ_{u_i}) per row, shape (n, K) (the regression mean or logits)."""
        self._check_fitted()
        design = self.design(X)
        u = self.user_index(users, design.shape[0], self.n_users_)
        with torch.no_grad():
            return per_user_outputs(design, self.thetas_, u)

    def decision_global(self, X: Any) -> torch.Tensor:
        """f(x; θ_0): the global model's output, shape (n, K)."""
        self._check_fitted()
        design = self.design(X)
        return per_user_outputs(
            design, self.theta0_.unsqueeze(0), torch.zeros(design.shape[0], dtype=torch.long)
        )

    def predict_proba_users(self, X: Any, users: Any) -> np.ndarray:
        """Class probabilities of each row by its user's model (classification)."""
        if self.task != "classification":
            raise AttributeError("predict_proba is defined for classification models only")
        return lk.class_probabilities(self.likelihood, self.decision(X, users)).numpy()

    def predict_users(self, X: Any, users: Any) -> np.ndarray:
        """Each row's prediction by its user's model."""
        if self.task == "regression":
            return self.decision(X, users)[:, 0].numpy()
        return self.classes_[self.predict_proba_users(X, users).argmax(axis=1)]

    # ------------------------------------------------------------------ the loop's protocol
    def predict(self, X: Any) -> np.ndarray:
        """Predictions for pair rows ``[user, x...]``."""
        from alloop.multiuser.pool import split_pairs

        return self.predict_users(*split_pairs(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities for pair rows ``[user, x...]`` (classification)."""
        from alloop.multiuser.pool import split_pairs

        return self.predict_proba_users(*split_pairs(X))

    #: the strategies that score with this model's own block tangents (``regularity_scores``)
    regularity_strategies = ("sld", "sti", "ssi")

    def regularity_scores(
        self, name: str, X: Any, *, X_val: Any = None, y_val: Any = None, **options: Any
    ) -> np.ndarray:
        """SLD, STI or SSI of pair rows: the ``sld``/``sti``/``ssi`` strategies on this model.

        The entries of s scored are the model's ``hyperparameters``. ``options``:
        ``batch_size``; SSI also ``s_bounds`` (one (lo, hi) for both, or one per hyperparameter) and the
        options of :func:`alloop.multiuser.ssi.ssi_scores`.
        """
        from alloop.multiuser.scoring import regularity_scores

        return regularity_scores(
            self, name, X, X_val=X_val, y_val=y_val, hyperparameters=self.hyperparameters,
            **options,
        )
