"""Fit + tangent time of the hierarchical multi-user GLM against the number of users.

For U users (default 100, 1,000, 5,000), each with ``--per-user`` labeled rows (default 50) and
``--params`` parameters (default 20: 19 features and the intercept), it times

* **fit** — :meth:`alloop.multiuser.HierarchicalGLM.fit` from cold (block Newton: per-user
  Cholesky factors plus one Schur-complement solve per iteration);
* **tangents** — dθ_0/ds and dθ_u/ds for s_0 and s_1 (:meth:`~HierarchicalGLM.tangents`,
  which factors the Hessian at the fit and applies the block formulas);

for the ridge (Gaussian) and the logistic (Bernoulli) likelihood, and fits log(time) against
log(U) by least squares: the exponent should be about 1 (linear in the number of users). A
dense joint solve would be cubic, (U·p)³.

With ``--part ssi`` it times multi-user SSI instead (:func:`alloop.multiuser.ssi_directions`:
two block solves and four warm-started refits for ∇²_s V, with 3 validation rows per user; then
:func:`alloop.multiuser.ssi_scores` of 10 candidates per user), and with ``--part heads`` one
minibatch step of :class:`alloop.multiuser.HierarchicalHeads` (trunk 16 tanh units, batch 256,
Adam) with both SGDF tangents carried (two runs along one trajectory), per step.

Every timing is the median over ``--repeats`` calls after one untimed warm-up, measured with
``time.perf_counter``. Run from the repository root::

    .venv/bin/python benchmarks/multiuser.py --threads 1 --out benchmarks/results/multiuser.md
    .venv/bin/python benchmarks/multiuser.py --part ssi --threads 1 --repeats 3 \
        --out benchmarks/results/multiuser_ssi.md
    .venv/bin/python benchmarks/multiuser.py --part heads --threads 1 --repeats 3 \
        --out benchmarks/results/multiuser_heads.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def make_data(n_users: int, per_user: int, n_features: int, likelihood: str, seed: int = 0):
    """Users sharing a global weight vector plus a personal deviation."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    X = rng.normal(size=(n, n_features))
    users = np.repeat(np.arange(n_users), per_user)
    W = rng.normal(size=n_features) / np.sqrt(n_features)
    W_users = W + 0.5 * rng.normal(size=(n_users, n_features)) / np.sqrt(n_features)
    f = np.einsum("nd,nd->n", X, W_users[users]) + 0.3 * rng.normal(size=n_users)[users]
    if likelihood == "gaussian":
        y = f + rng.normal(size=n)
    else:
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-f))).astype(int)
    return X, y, users


def time_one(n_users: int, args: argparse.Namespace, likelihood: str) -> dict[str, float]:
    from alloop.multiuser import HierarchicalGLM

    X, y, users = make_data(n_users, args.per_user, args.params - 1, likelihood)
    fits, tangents, iters = [], [], 0
    for repeat in range(args.repeats + 1):
        model = HierarchicalGLM(likelihood, s0=0.0, s1=0.0)
        t0 = time.perf_counter()
        model.fit_users(X, y, users, n_users=n_users)
        t1 = time.perf_counter()
        model.tangents()
        t2 = time.perf_counter()
        if repeat:  # the first call is the warm-up
            fits.append(t1 - t0)
            tangents.append(t2 - t1)
        iters = model.n_iter_
    fit, tangent = statistics.median(fits), statistics.median(tangents)
    return {"fit": fit, "tangents": tangent, "total": fit + tangent, "newton_iters": iters}


def time_ssi(n_users: int, args: argparse.Namespace, likelihood: str) -> dict[str, float]:
    from alloop.multiuser import HierarchicalGLM, ssi_directions, ssi_scores

    X, y, users = make_data(n_users, args.per_user + 13, args.params - 1, likelihood)
    per = args.per_user + 13
    first = np.arange(users.size) % per
    train, val, cand = first < args.per_user, first >= per - 3, (first >= args.per_user) & (
        first < per - 3
    )
    model = HierarchicalGLM(likelihood, s0=0.0, s1=0.0).fit_users(
        X[train], y[train], users[train], n_users=n_users
    )
    model.tangents()
    dirs_t, score_t = [], []
    for repeat in range(args.repeats + 1):
        t0 = time.perf_counter()
        dirs = ssi_directions(model, X[val], y[val], users[val], bounds=None, curvature_floor=0.0)
        t1 = time.perf_counter()
        ssi_scores(model, X[cand], users[cand], directions=dirs)
        t2 = time.perf_counter()
        if repeat:
            dirs_t.append(t1 - t0)
            score_t.append(t2 - t1)
    d, sc = statistics.median(dirs_t), statistics.median(score_t)
    return {"directions": d, "scores": sc, "total": d + sc, "candidates": int(cand.sum())}


def time_heads(n_users: int, args: argparse.Namespace, likelihood: str) -> dict[str, float]:
    from alloop.multiuser import HierarchicalHeads

    steps = 20
    batch = 256
    rows = steps * batch  # one "epoch" of exactly ``steps`` batches
    per_user = max(args.per_user, -(-rows // n_users))
    X, y, users = make_data(n_users, per_user, args.params - 1, likelihood)
    pick = np.random.default_rng(1).choice(users.size, size=rows, replace=False)
    times = []
    for repeat in range(args.repeats + 1):
        model = HierarchicalHeads(likelihood, hidden=(16,), epochs=1, batch_size=batch)
        t0 = time.perf_counter()
        model.fit_users(X[pick], y[pick], users[pick], n_users=n_users)
        if repeat:
            times.append((time.perf_counter() - t0) / steps)
    active = int(np.unique(users[pick]).size)
    return {"step": statistics.median(times), "active": active}


def exponent(users: list[int], times: list[float]) -> float:
    """Slope of log(time) on log(users), by least squares."""
    return float(np.polyfit(np.log(users), np.log(times), 1)[0])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--per-user", type=int, default=50)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--likelihoods", nargs="+", default=["gaussian", "bernoulli"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--part", choices=("glm", "ssi", "heads"), default="glm")
    args = parser.parse_args(argv)
    if args.part != "glm":
        return main_part(args, argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Hierarchical multi-user GLM: fit + tangent time against the number of users",
        "",
        f"Command: `.venv/bin/python benchmarks/multiuser.py {command}`",
        "",
        f"{args.per_user} labeled rows and {args.params} parameters per user; median of "
        f"{args.repeats} calls after a warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}.",
        "",
        "| likelihood | users | rows | Newton iters | fit s | tangents s | fit + tangents s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    summary = [
        "",
        "| likelihood | exponent: fit | exponent: tangents | exponent: fit + tangents |",
        "|---|---:|---:|---:|",
    ]
    for likelihood in args.likelihoods:
        rows = {u: time_one(u, args, likelihood) for u in args.users}
        for u, r in rows.items():
            lines.append(
                f"| {likelihood} | {u:,} | {u * args.per_user:,} | {r['newton_iters']} | "
                f"{r['fit']:.4f} | {r['tangents']:.4f} | {r['total']:.4f} |"
            )
            print(lines[-1], flush=True)
        us = list(rows)
        summary.append(
            f"| {likelihood} | {exponent(us, [rows[u]['fit'] for u in us]):.2f} | "
            f"{exponent(us, [rows[u]['tangents'] for u in us]):.2f} | "
            f"{exponent(us, [rows[u]['total'] for u in us]):.2f} |"
        )
    summary.append("")
    summary.append(
        "Exponent: least-squares slope of log(time) on log(users); 1 is linear. A dense joint "
        "solve over all users' parameters would scale as users³."
    )
    text = "\n".join(lines + summary) + "\n"
    print("\n".join(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


def main_part(args: argparse.Namespace, argv: list[str] | None) -> str:
    """The SSI or torch-heads table with its fitted exponent."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    env = (
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{platform.processor() or platform.machine()}; load average at the start {load} on "
        f"{__import__('os').cpu_count()} cores (a shared machine: absolute times are noisy, "
        "the slope is the point)."
    )
    if args.part == "ssi":
        title = "Multi-user SSI: per-fit directions and candidate scores against the users"
        header = ["| likelihood | users | candidates | directions s | scores s | total s |",
                  "|---|---:|---:|---:|---:|---:|"]
        keys = ("directions", "scores", "total")
        timer = time_ssi
        what = (f"{args.per_user} training rows, 3 validation rows, 10 candidates and "
                f"{args.params} parameters per user")
    else:
        title = "Hierarchical heads over a torch trunk: one Adam step with both SGDF tangents"
        header = ["| likelihood | users | users in the data | seconds per step |",
                  "|---|---:|---:|---:|"]
        keys = ("step",)
        timer = time_heads
        what = (f"5,120 rows spread over the users, {args.params - 1} features, trunk 16 units, "
                "batch 256")
    lines = [f"# {title}", "", f"Command: `.venv/bin/python benchmarks/multiuser.py {command}`",
             "", f"{what}; median of {args.repeats} calls after a warm-up; {env}", "", *header]
    summary = ["", "| likelihood | " + " | ".join(f"exponent: {k}" for k in keys) + " |",
               "|---|" + "---:|" * len(keys)]
    for likelihood in args.likelihoods:
        rows = {u: timer(u, args, likelihood) for u in args.users}
        for u, r in rows.items():
            if args.part == "ssi":
                lines.append(f"| {likelihood} | {u:,} | {r['candidates']:,} | "
                             f"{r['directions']:.4f} | {r['scores']:.4f} | {r['total']:.4f} |")
            else:
                lines.append(f"| {likelihood} | {u:,} | {r['active']:,} | {r['step']:.5f} |")
            print(lines[-1], flush=True)
        us = list(rows)
        summary.append(f"| {likelihood} | " + " | ".join(
            f"{exponent(us, [rows[u][k] for u in us]):.2f}" for k in keys) + " |")
    summary += ["", "Exponent: least-squares slope of log(time) on log(users); 1 is linear."]
    text = "\n".join(lines + summary) + "\n"
    print("\n".join(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
