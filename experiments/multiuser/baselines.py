"""The baselines of the MovieLens experiment: one global ridge, independent per-user ridges.

Neither is a model of the loop (the global one ignores the user; the independent ones share
only λ), so they run in their own short round loop here; the hierarchical model runs through
:class:`alloop.ActiveLoop` (``movielens.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from ratings import CHECKPOINTS, Ratings, split_rows  # noqa: E402

from alloop.models import LinearGLM  # noqa: E402
from alloop.multiuser import select_candidates  # noqa: E402
from alloop.multiuser.outputs import per_user_loss_gradients, per_user_loss_hessians  # noqa: E402
from alloop.multiuser.schur import batched_cholesky  # noqa: E402
from alloop.regularity import scores as single_scores  # noqa: E402
from alloop.regularity import select_regularity  # noqa: E402

#: the per-round metrics of a baseline's run
ROUND_METRICS = ("labels_per_user", "rmse_user_mean", "rmse_user_median", "users_without_labels",
                 "validation_loss", "s", "fit_seconds", "fits")


class Learner:
    """fit on labeled rows with regularity chosen on validation; predict; SLD of candidates."""

    name: str
    path: list[tuple[float, ...]]

    def fit(self, X, y, users, Xv, yv, uv) -> dict[str, float]: ...

    def predict(self, X, users) -> np.ndarray: ...

    def sld(self, X, users) -> np.ndarray: ...


class GlobalRidge(Learner):
    name = "global"

    def __init__(self, n_users: int) -> None:
        self.model = LinearGLM(s=0.0)
        self.s = 0.0

    def fit(self, X, y, users, Xv, yv, uv):
        self.s, self.model, info = select_regularity(
            self.model, X, y, Xv, yv, s0=self.s, bounds=(-10.0, 12.0)
        )
        self.path = [(h[0],) for h in info.history]
        return {"s": self.s, "validation_loss": info.value, "fits": info.iterations}

    def predict(self, X, users):
        return self.model.predict(X)

    def sld(self, X, users):
        return single_scores.sld_scores(self.model, X)


class IndependentRidge(Learner):
    """One ridge per user, intercept unpenalized, one λ for all; no labels → labeled mean."""

    name = "independent"

    def __init__(self, n_users: int) -> None:
        self.n_users = n_users
        self.s = 0.0

    def _solve(self, s: float) -> None:
        lam = float(np.exp(s))
        mask = torch.ones(self.p, dtype=torch.float64)
        mask[-1] = 0.0
        H = self.L[self.active] + lam * torch.diag(mask)
        self.factor = batched_cholesky(H)
        theta = torch.cholesky_solve(self.b[self.active].unsqueeze(2), self.factor)[:, :, 0]
        self.theta = torch.zeros(self.n_users, self.p, dtype=torch.float64)
        self.theta[self.active] = theta
        self.lam, self.mask = lam, mask

    def _raw_predict(self, X, users) -> np.ndarray:
        design = np.column_stack([X, np.ones(len(X))])
        out = np.einsum("nj,nj->n", design, self.theta.numpy()[users])
        return np.where(self.has_data[users], out, self.fallback)

    def fit(self, X, y, users, Xv, yv, uv):
        design = torch.as_tensor(np.column_stack([X, np.ones(len(X))]))
        u = torch.as_tensor(users)
        self.p = design.shape[1]
        ones = torch.ones(len(X), 1, 1, dtype=torch.float64)
        self.L = per_user_loss_hessians(design, ones, u, self.n_users)
        self.b = per_user_loss_gradients(design, torch.as_tensor(y).unsqueeze(1), u, self.n_users)
        counts = np.bincount(users, minlength=self.n_users)
        self.has_data = counts > 0
        self.active = torch.as_tensor(np.flatnonzero(self.has_data))
        self.fallback = float(np.mean(y))
        path = []

        def val_loss(s: float) -> float:
            self._solve(s)
            value = 0.5 * float(np.sum((self._raw_predict(Xv, uv) - yv) ** 2))
            path.append((float(s), value))
            return value

        result = scipy.optimize.minimize_scalar(
            val_loss, bounds=(-10.0, 12.0), method="bounded", options={"xatol": 1e-3}
        )
        self.s = float(result.x)
        self._solve(self.s)
        self.path = [(s,) for s, _ in path]
        return {"s": self.s, "validation_loss": float(result.fun), "fits": len(path)}

    def predict(self, X, users):
        return self._raw_predict(X, users)

    def sld(self, X, users):
        # θ̇_u = −(L_u + λM)⁻¹ λMθ_u; Gaussian, σ² = 1: E_y[(g·θ̇_u)²] = ḟ² with ḟ = x̃·θ̇_u
        rhs = (self.lam * self.mask * self.theta[self.active]).unsqueeze(2)
        tangent = torch.zeros_like(self.theta)
        tangent[self.active] = -torch.cholesky_solve(rhs, self.factor)[:, :, 0]
        design = np.column_stack([X, np.ones(len(X))])
        return np.einsum("nj,nj->n", design, tangent.numpy()[users]) ** 2


LEARNERS: dict[str, Callable[[int], Learner]] = {
    "global": GlobalRidge,
    "independent": IndependentRidge,
}


def per_user_rmse(pred: np.ndarray, y: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    sq = np.bincount(users, weights=(pred - y) ** 2, minlength=n_users)
    n = np.bincount(users, minlength=n_users)
    return np.sqrt(sq / np.maximum(n, 1))


def run_baseline(
    data: Ratings, model_name: str, strategy: str, seed: int, args: argparse.Namespace, log: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A baseline (global or independent ridge; not models of the loop) in its round loop."""
    if strategy not in ("random", "sld", "sld-quota"):
        raise ValueError(f"{strategy} is defined for the hierarchical model only")
    split = split_rows(data, seed, args.val_per_user, args.pool_per_user)
    rng = np.random.default_rng(10_000 + seed)
    U = data.user_ids.size
    learner = LEARNERS[model_name](U)
    labeled = np.zeros(data.y.size, dtype=bool)
    labeled[split.initial] = True
    in_pool = np.zeros(data.y.size, dtype=bool)
    in_pool[split.pool] = True
    batch = max(1, int(round(args.batch_fraction * U)))
    Xv, yv, uv = data.X[split.val], data.y[split.val], data.users[split.val]
    Xt, yt, ut = data.X[split.test], data.y[split.test], data.users[split.test]
    rows, finals = [], None
    for rnd in range(10**6):
        t0 = time.perf_counter()
        lab = np.flatnonzero(labeled)
        info = learner.fit(data.X[lab], data.y[lab], data.users[lab], Xv, yv, uv)
        fit_s = time.perf_counter() - t0
        rmse = per_user_rmse(learner.predict(Xt, ut), yt, ut, U)
        labels = np.bincount(data.users[lab], minlength=U)
        per_label = lab.size / U
        row = {
            "model": model_name,
            "strategy": strategy,
            "seed": seed,
            "round": rnd,
            "labels": int(lab.size),
            "labels_per_user": per_label,
            "rmse_user_mean": float(rmse.mean()),
            "rmse_user_median": float(np.median(rmse)),
            "users_without_labels": int((labels == 0).sum()),
            "fit_seconds": fit_s,
            **info,
        }
        rows.append(row)
        log.log_metrics({k: float(v) for k, v in row.items() if k in ROUND_METRICS}, step=rnd)
        checkpoint = any(abs(per_label - c) < 0.5 * batch / U for c in CHECKPOINTS)
        done = per_label >= args.max_labels - 1e-9 or not (in_pool & ~labeled).any()
        if checkpoint or done:
            log.log_metrics({f"user/{uid}/{key}": float(v) for uid, e, n in
                             zip(data.user_ids, rmse, labels, strict=True)
                             for key, v in (("rmse", e), ("labels", n))}, step=rnd)
        if done:
            finals = pd.DataFrame(
                {
                    "model": model_name,
                    "strategy": strategy,
                    "seed": seed,
                    "user": data.user_ids,
                    "labels": labels,
                    "rmse": rmse,
                }
            )
            break
        candidates = np.flatnonzero(in_pool & ~labeled)
        if strategy == "random":
            scores = rng.random(candidates.size)
        else:
            scores = learner.sld(data.X[candidates], data.users[candidates])
        quota = int(np.ceil(batch / U)) if strategy.endswith("-quota") else None
        take = select_candidates(scores, data.users[candidates], batch, quota=quota, rng=rng)
        labeled[candidates[take]] = True  # the oracle: the user's recorded rating
    return pd.DataFrame(rows), finals
