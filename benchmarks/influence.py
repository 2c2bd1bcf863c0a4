"""Cost of the influence estimators, each relative to the training it explains.

Two parts, run side by side in one process:

**SGD influence** (``docs/math.md`` §7). 400 training samples, 30 epochs of minibatch SGD
(batch 10, 1,200 steps), for a logistic GLM (closed-form Hessian-vector products) and a
two-layer tanh MLP written as a plain torch function (``torch.func.vmap`` Hessian-vector
products; ``experiments/influence/two_layer.py``). Timed: one plain training run
(:func:`alloop.influence.sgd_train`), ACC-SGD-IE and SGD-IE for all 400 samples
(:func:`alloop.influence.sgd_influence`, one N × p propagation each), and Hara's single backward
vector for SGD-IE's validation-loss change (:func:`alloop.influence.sgd_ie_backward`). Each
time is divided by the plain training run's.

**IP-adding scoring** (``docs/math.md`` §6). A GLM fitted on a base set, 10,000 labeled
candidates and a validation set. Timed: one model fit on the base set (a fresh clone, from
zero), the scores of all candidates (:func:`alloop.influence.ip_adding_scores`: one solve), the
expected scores of the same candidates unlabeled (:func:`alloop.influence.expected_scores`), and
the full Δf matrix (:func:`alloop.influence.prediction_changes`: one solve with the validation
Jacobian). Each time is divided by the fit's.

Data: 2 Gaussian classes (x = μ_y + ε, μ_c ~ N(0, 0.35²·I), ε ~ N(0, I)), seeded; for the
softmax task 10 classes. Every measurement is repeated ``--repeats`` times after one warm-up
run that is not reported; the table shows medians.

Run from the repository root::

    .venv/bin/python benchmarks/influence.py --threads 1 --out benchmarks/results/influence.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "experiments" / "influence"))  # the two-layer network


def gaussian_classes(n: int, d: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    means = 0.35 * rng.standard_normal((k, d))
    y = rng.integers(k, size=n)
    return means[y] + rng.standard_normal((n, d)), y


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- SGD influence
def bench_sgd(args: argparse.Namespace) -> list[list[str]]:
    import torch
    from two_layer import two_layer

    from alloop.influence import model_penalty
    from alloop.models import LogisticGLM

    rng = np.random.default_rng(args.seed)
    X, y = gaussian_classes(2 * args.n, args.d, 2, rng)
    Xt = torch.as_tensor(X[: args.n], dtype=torch.float64)
    yt = torch.as_tensor(y[: args.n], dtype=torch.float64)
    Xv = torch.as_tensor(X[args.n :], dtype=torch.float64)
    yv = torch.as_tensor(y[args.n :], dtype=torch.float64)
    rows = []
    glm = LogisticGLM(s=0.0).fit(X[: args.n], y[: args.n])
    mlp_loss, mlp_penalty, net = two_layer(args.d, args.hidden, 1.0 / args.n)
    setups = {
        f"logistic GLM (p = {glm.theta_.numel()})": (glm, model_penalty(glm, args.n), torch.zeros_like(glm.theta_), 0.1),
        f"two-layer MLP, {args.hidden} hidden (p = {net.n_params})": (mlp_loss, mlp_penalty, net.init(0), 0.03),
    }
    for label, setup in setups.items():
        rows += sgd_rows(label, *setup, Xt, yt, Xv, yv, args)
        print(f"{label}: done", file=sys.stderr, flush=True)
    return rows


def sgd_rows(label, loss, penalty, theta0, lr, Xt, yt, Xv, yv, args) -> list[list[str]]:
    """Time training and the three estimators for one model; rows with ratios to training."""
    from alloop.influence import sgd_ie_backward, sgd_influence, sgd_train, validation_gradient

    def train():
        return sgd_train(loss, theta0, Xt, yt, lr=lr, epochs=args.epochs, batch_size=args.batch_size,
                         penalty=penalty, seed=0)

    run = train()
    grad_v = validation_gradient(loss, run.theta_final, Xv, yv)
    times = {
        "plain SGD training": timed(train, args.repeats),
        "ACC-SGD-IE, all samples (δ, N × p)": timed(
            lambda: sgd_influence(run, loss, Xt, yt, estimator="acc", penalty=penalty), args.repeats),
        "SGD-IE, all samples (δ, N × p)": timed(
            lambda: sgd_influence(run, loss, Xt, yt, estimator="sgd", penalty=penalty), args.repeats),
        "SGD-IE ΔV, one backward vector (Hara)": timed(
            lambda: sgd_ie_backward(run, loss, Xt, yt, grad_v, penalty=penalty), args.repeats),
    }
    base = statistics.median(times["plain SGD training"])
    return [[label, name, f"{statistics.median(v):.3f}", f"{statistics.median(v) / base:.1f}×"]
            for name, v in times.items()]


# ----------------------------------------------------------------------------- IP-adding
def bench_ip_adding(args: argparse.Namespace) -> list[list[str]]:
    from alloop.models import LogisticGLM, SoftmaxGLM

    rows: list[list[str]] = []
    rng = np.random.default_rng(args.seed + 1)
    for k, d in ((2, args.ip_features), (10, args.ip_features_softmax)):
        n_all = args.base + args.candidates + args.validation
        X, y = gaussian_classes(n_all, d, k, rng)
        Xb, yb = X[: args.base], y[: args.base]
        Xc, yc = X[args.base : args.base + args.candidates], y[args.base : args.base + args.candidates]
        Xv, yv = X[args.base + args.candidates :], y[args.base + args.candidates :]
        template = LogisticGLM(s=0.0) if k == 2 else SoftmaxGLM(s=0.0)
        rows += ip_rows(template, Xb, yb, Xc, yc, Xv, yv, args)
    return rows


def ip_rows(template, Xb, yb, Xc, yc, Xv, yv, args) -> list[list[str]]:
    """Time one fit and the three IP-adding computations; rows with ratios to the fit."""
    from alloop.influence import expected_scores, ip_adding_scores, prediction_changes

    model = template.clone().fit(Xb, yb)
    k = 2 if model.likelihood == "bernoulli" else model.n_outputs_
    label = (f"{'logistic' if k == 2 else f'softmax, {k} classes'} GLM, d = {Xb.shape[1]} "
             f"(p = {model.theta_.numel()}), base {len(yb)}, validation {len(yv)}")
    n = len(yc)
    times = {
        "one model fit (base set, from zero)": timed(lambda: template.clone().fit(Xb, yb), args.repeats),
        f"IP-adding scores, {n:,} labeled candidates": timed(
            lambda: ip_adding_scores(model, Xc, yc, Xv, yv), args.repeats),
        f"expected scores, {n:,} unlabeled candidates": timed(
            lambda: expected_scores(model, Xc, Xv, yv), args.repeats),
        f"full Δf matrix ({n:,} × {len(yv)})": timed(
            lambda: prediction_changes(model, Xc, yc, Xv, yv), args.repeats),
    }
    base = statistics.median(times["one model fit (base set, from zero)"])
    print(f"{label}: done", file=sys.stderr, flush=True)
    return [[label, name, f"{statistics.median(v):.3f}", f"{statistics.median(v) / base:.2f}×"]
            for name, v in times.items()]


# ----------------------------------------------------------------------------- report
def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| --- | --- | ---: | ---: |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def environment(args: argparse.Namespace) -> str:
    import scipy
    import torch

    return (
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__}; {platform.machine()} with {os.cpu_count()} CPUs; "
        f"threads: {args.threads}; medians of {args.repeats} runs after one warm-up"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS/OpenMP threads")
    parser.add_argument("--n", type=int, default=400, help="SGD training samples")
    parser.add_argument("--d", type=int, default=64, help="SGD features")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=8, help="MLP hidden units")
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--base", type=int, default=2_000)
    parser.add_argument("--validation", type=int, default=1_000)
    parser.add_argument("--ip-features", type=int, default=100, help="features of the binary IP-adding task")
    parser.add_argument("--ip-features-softmax", type=int, default=50, help="features of the softmax task")
    parser.add_argument("--parts", nargs="+", choices=("sgd", "ip"), default=["sgd", "ip"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        sections = [f"# Influence estimators: cost relative to training\n\n{environment(args)}.\n"]
        if "sgd" in args.parts:
            rows = bench_sgd(args)
            sections.append(
                f"## SGD-IE / ACC-SGD-IE: {args.n} samples × {args.epochs} epochs "
                f"(batch {args.batch_size}, {args.d} features)\n\n"
                + table(["model", "what", "seconds", "÷ plain training"], rows) + "\n"
            )
        if "ip" in args.parts:
            rows = bench_ip_adding(args)
            sections.append(
                f"## IP-adding: {args.candidates:,} candidates\n\n"
                + table(["model", "what", "seconds", "÷ one fit"], rows) + "\n"
            )
    report = "\n".join(sections)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
