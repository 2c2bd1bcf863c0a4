"""The baselines of the MovieLens experiment as models of the loop: one global ridge, and
independent per-user ridges that share one λ.

Both implement the loop's model protocol (:class:`alloop.models.base.Model`) on (user, movie)
pair rows ``[user, x...]`` (:func:`alloop.multiuser.pool.pair_rows`). They declare their own
SLD scores (:class:`alloop.models.capabilities.OwnRegularityScores`), and each comes with a
regularity hook that chooses s on the validation split every round. They run through
:class:`alloop.ActiveLoop` like the hierarchical model (``movielens.py``).

* :class:`GlobalRidge` — one :class:`alloop.models.LinearGLM` for every user; the user column
  is ignored. :class:`GlobalRegularity` chooses s by hypergradient
  (:func:`alloop.regularity.select_regularity`), warm-started from last round's s.
* :class:`IndependentRidges` — one ridge per user with a common λ = e^s; the intercept is
  unpenalized, and a user without labels is predicted the mean label. Each fit is one batched
  closed-form solve. :class:`IndependentRegularity` chooses s by a bounded 1-D search of the
  validation loss.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from alloop.models import LinearGLM  # noqa: E402
from alloop.multiuser import UserReport  # noqa: E402
from alloop.multiuser.outputs import per_user_loss_gradients, per_user_loss_hessians  # noqa: E402
from alloop.multiuser.pool import PairPool, split_pairs  # noqa: E402
from alloop.multiuser.schur import batched_cholesky  # noqa: E402
from alloop.regularity import scores as single_scores  # noqa: E402
from alloop.regularity import select_regularity  # noqa: E402

#: the regularity box of every baseline's search
BOUNDS = (-10.0, 12.0)


def _sld_only(name: str) -> None:
    if name != "sld":
        raise ValueError(f"the MovieLens baselines score 'sld' only; got strategy {name!r}")


# --------------------------------------------------------------------------- global
class GlobalRidge:
    """One ridge for all users on pair rows: the user column is ignored.

    The ridge is a :class:`alloop.models.LinearGLM` with σ² = 1, so its s is log κ, where
    κ = e^s σ² is what θ* depends on (the search of :class:`GlobalRegularity` estimates σ²
    and reports κ).

    Parameters
    ----------
    s : float
        log κ of the ridge.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser.pool import pair_rows
    >>> X = pair_rows(np.eye(3), [0, 1, 1])
    >>> model = GlobalRidge(s=0.0).fit(X, np.array([1.0, 2.0, 3.0]))
    >>> model.predict(X).shape, model.regularity_scores("sld", X).shape
    ((3,), (3,))
    """

    task = "regression"
    regularity_strategies = ("sld",)

    def __init__(self, s: float = 0.0) -> None:
        self.glm = LinearGLM(s=float(s), sigma2=1.0)
        self.classes_ = None

    @property
    def s(self) -> float:
        return float(self.glm.s)

    def with_s(self, s: float) -> GlobalRidge:
        new = copy.copy(self)
        new.glm = self.glm.with_s(float(s))
        return new

    def clone(self) -> GlobalRidge:
        new = copy.copy(self)
        new.glm = self.glm.clone()
        return new

    def fit(self, X: Any, y: Any, classes: Any = None) -> GlobalRidge:
        features, _ = split_pairs(X)
        self.glm.fit(features, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_users(*split_pairs(X))

    def predict_users(self, features: Any, users: Any) -> np.ndarray:
        return self.glm.predict(features)

    def regularity_scores(self, name: str, X: Any, **options: Any) -> np.ndarray:
        """SLD of the global ridge's own tangent (the loop's ``sld`` strategy)."""
        _sld_only(name)
        return single_scores.sld_scores(self.glm, split_pairs(X)[0])


@dataclass
class Search:
    """What a regularity search found: V at the chosen s, and the fits it took."""

    value: float
    fits: int


@dataclass
class GlobalRegularity:
    """``ActiveLoop(..., regularity=GlobalRegularity())`` for :class:`GlobalRidge`.

    Each round runs :func:`alloop.regularity.select_regularity` on a ridge whose σ² is
    estimated, started from the ridge and the s it chose last round, and hands the loop
    log κ = s + log σ² of its choice. The search holds σ² fixed along s, so its V differs from
    the σ² = 1 ridge's only by the factor 1/σ²: the same κ is chosen.
    """

    bounds: tuple[float, float] = BOUNDS
    last: Search | None = field(default=None, repr=False, compare=False)
    #: last round's search result (its θ, σ² and s start the next search)
    previous: Any = field(default=None, repr=False, compare=False)

    def __call__(self, template: GlobalRidge, X: Any, y: Any, X_val: Any, y_val: Any,
                 s0: Any = None, **_: Any) -> tuple[GlobalRidge, float]:
        start = LinearGLM(s=0.0) if self.previous is None else self.previous
        s, glm, info = select_regularity(
            start, split_pairs(X)[0], np.asarray(y, dtype=np.float64),
            split_pairs(X_val)[0], np.asarray(y_val, dtype=np.float64), s0=float(start.s),
            bounds=self.bounds,
        )
        self.last, self.previous = Search(float(info.value), int(info.iterations)), glm
        log_kappa = float(s) + float(np.log(glm.sigma2))
        return template.with_s(log_kappa).clone().fit(X, y), log_kappa


# --------------------------------------------------------------------------- independent
class IndependentRidges:
    """One ridge per user, one λ = e^s for all; the intercept is unpenalized.

    A user without labels is predicted the mean of every label.

    Parameters
    ----------
    n_users : int
        U: pair rows hold user indices 0..U-1.
    s : float
        log λ.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser.pool import pair_rows
    >>> X = pair_rows(np.ones((4, 1)), [0, 0, 1, 1])
    >>> model = IndependentRidges(n_users=3, s=0.0).fit(X, np.array([1.0, 1.0, 3.0, 3.0]))
    >>> model.predict(pair_rows(np.ones((3, 1)), [0, 1, 2])).round(3).tolist()
    [1.0, 3.0, 2.0]
    """

    task = "regression"
    regularity_strategies = ("sld",)

    def __init__(self, n_users: int, s: float = 0.0) -> None:
        if not (isinstance(n_users, int | np.integer) and n_users >= 1):
            raise ValueError(f"n_users must be a positive integer; got {n_users!r}")
        self.n_users, self.s = int(n_users), float(s)
        self.classes_ = None
        self.theta: torch.Tensor | None = None

    def with_s(self, s: float) -> IndependentRidges:
        """A copy at s; a fitted copy is solved again at the new s."""
        new = copy.copy(self)
        new.s = float(s)
        if self.theta is not None:
            new._solve(new.s)
        return new

    def clone(self) -> IndependentRidges:
        return IndependentRidges(self.n_users, self.s)

    def fit(self, X: Any, y: Any, classes: Any = None) -> IndependentRidges:
        features, users = split_pairs(X)
        y = np.asarray(y, dtype=np.float64)
        design = torch.as_tensor(np.column_stack([features, np.ones(len(features))]))
        u = torch.as_tensor(users)
        self.p = design.shape[1]
        ones = torch.ones(len(features), 1, 1, dtype=torch.float64)
        self.L = per_user_loss_hessians(design, ones, u, self.n_users)
        self.b = per_user_loss_gradients(design, torch.as_tensor(y).unsqueeze(1), u, self.n_users)
        self.has_data = np.bincount(users, minlength=self.n_users) > 0
        self.active = torch.as_tensor(np.flatnonzero(self.has_data))
        self.fallback = float(np.mean(y))
        self._solve(self.s)
        return self

    def _solve(self, s: float) -> None:
        lam = float(np.exp(s))
        mask = torch.ones(self.p, dtype=torch.float64)
        mask[-1] = 0.0
        self.factor = batched_cholesky(self.L[self.active] + lam * torch.diag(mask))
        theta = torch.cholesky_solve(self.b[self.active].unsqueeze(2), self.factor)[:, :, 0]
        self.theta = torch.zeros(self.n_users, self.p, dtype=torch.float64)
        self.theta[self.active] = theta
        self.lam, self.mask = lam, mask

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_users(*split_pairs(X))

    def predict_users(self, features: Any, users: Any) -> np.ndarray:
        if self.theta is None:
            raise RuntimeError("IndependentRidges is not fitted yet; call fit(X, y) first")
        users = np.asarray(users)
        design = np.column_stack([features, np.ones(len(features))])
        out = np.einsum("nj,nj->n", design, self.theta.numpy()[users])
        return np.where(self.has_data[users], out, self.fallback)

    def validation_loss(self, s: float, features: Any, users: Any, y: Any) -> float:
        """½ Σ (prediction − y)² over the validation rows, solved at ``s`` (the model moves
        to ``s``)."""
        self.s = float(s)
        self._solve(self.s)
        return 0.5 * float(np.sum((self.predict_users(features, users) - y) ** 2))

    def regularity_scores(self, name: str, X: Any, **options: Any) -> np.ndarray:
        """SLD of each user's own tangent θ̇_u = −(L_u + λM)⁻¹ λMθ_u.

        Gaussian with σ² = 1: E_y[(g·θ̇_u)²] = ḟ², with ḟ = x̃·θ̇_u.
        """
        _sld_only(name)
        features, users = split_pairs(X)
        rhs = (self.lam * self.mask * self.theta[self.active]).unsqueeze(2)
        tangent = torch.zeros_like(self.theta)
        tangent[self.active] = -torch.cholesky_solve(rhs, self.factor)[:, :, 0]
        design = np.column_stack([features, np.ones(len(features))])
        return np.einsum("nj,nj->n", design, tangent.numpy()[users]) ** 2


@dataclass
class IndependentRegularity:
    """``ActiveLoop(..., regularity=IndependentRegularity())`` for :class:`IndependentRidges`:
    a bounded 1-D search of the validation loss (one batched solve per evaluation)."""

    bounds: tuple[float, float] = BOUNDS
    xatol: float = 1e-3
    last: Search | None = field(default=None, repr=False, compare=False)

    def __call__(self, template: IndependentRidges, X: Any, y: Any, X_val: Any, y_val: Any,
                 s0: Any = None, **_: Any) -> tuple[IndependentRidges, float]:
        model = template.clone().fit(X, y)
        features, users = split_pairs(X_val)
        y_val = np.asarray(y_val, dtype=np.float64)
        fits = []

        def loss(s: float) -> float:
            fits.append(s)
            return model.validation_loss(s, features, users, y_val)

        result = scipy.optimize.minimize_scalar(
            loss, bounds=self.bounds, method="bounded", options={"xatol": self.xatol}
        )
        self.last = Search(float(result.fun), len(fits))
        return model.with_s(float(result.x)), float(result.x)


# --------------------------------------------------------------------------- report
@dataclass
class SearchReport:
    """The loop's ``round_report`` of a baseline: the per-user table and metrics of
    :class:`alloop.multiuser.UserReport`, with the search's V and fit count as
    ``validation_loss`` and ``hyper_evaluations``."""

    users: UserReport
    regularity: GlobalRegularity | IndependentRegularity

    def __call__(self, model: Any, pool: PairPool
                 ) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        metrics, tables = self.users(model, pool)
        if self.regularity.last is not None:
            metrics["validation_loss"] = self.regularity.last.value
            metrics["hyper_evaluations"] = float(self.regularity.last.fits)
        return metrics, tables
