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

Every timing is the median over ``--repeats`` calls after one untimed warm-up, measured with
``time.perf_counter``. Run from the repository root::

    .venv/bin/python benchmarks/multiuser.py --threads 1 --out benchmarks/results/multiuser.md
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
        model.fit(X, y, users, n_users=n_users)
        t1 = time.perf_counter()
        model.tangents()
        t2 = time.perf_counter()
        if repeat:  # the first call is the warm-up
            fits.append(t1 - t0)
            tangents.append(t2 - t1)
        iters = model.n_iter_
    fit, tangent = statistics.median(fits), statistics.median(tangents)
    return {"fit": fit, "tangents": tangent, "total": fit + tangent, "newton_iters": iters}


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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()
