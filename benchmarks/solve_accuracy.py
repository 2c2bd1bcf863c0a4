"""Accuracy and cost of the MLP's cheap solves (STI's q = H⁻¹θ̂, SSI's u = H⁻¹g_V) vs an exact one.

On a network small enough for a dense Hessian (default 64-16-16-10, tanh, trained like the
scoring benchmark's MLP: SGD with momentum and the tangent carried along, 2 epochs), every
solve variant that :class:`alloop.linalg.Inverse` offers (CG with an iteration budget or a
residual tolerance, the Jacobi preconditioner, Hessian products over a row subsample) is
compared with the Cholesky solve of the dense H + δI:

* ‖q − q_exact‖/‖q_exact‖ and ‖u − u_exact‖/‖u_exact‖;
* the Spearman correlation of the STI scores E_y[(g·q)²] over a pool with those of q_exact;
* the CPU time of the q solve (``time.process_time``, one thread) and the Hessian products
  it used.

The dense H is assembled column block by column block from ``alloop.linalg.hvp_fn``
(tests/test_cheap_solves.py checks that against ``torch.func.hessian``). After SGD the network
is not at a minimum and H is indefinite, so δ = max(``--damping`` × n, 1.5 |λ_min(H)|): the
smallest multiple of the scoring benchmark's damping rule that makes H + δI positive definite.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/solve_accuracy.py --out /tmp/solves.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring import gaussian_classes  # noqa: E402


def dense_hessian(model: Any, block: int = 128) -> Any:
    """H of the training objective at θ*, from batched Hessian-vector products."""
    import torch

    from alloop.linalg import hvp_fn

    p = model.theta_.numel()
    products = torch.func.vmap(hvp_fn(model), 1, 1)
    eye = torch.eye(p, dtype=model.theta_.dtype)
    H = torch.cat([products(eye[:, j : j + block]) for j in range(0, p, block)], dim=1)
    return (H + H.T) / 2  # symmetric up to rounding


def variants(n: int) -> list[tuple[str, dict[str, Any]]]:
    """(label, Inverse options) of every solve compared."""
    return [
        ("CG, 5 iterations", {"max_iter": 5}),
        ("CG, 10 iterations (the scoring benchmark's budget)", {"max_iter": 10}),
        ("CG, 20 iterations", {"max_iter": 20}),
        ("CG to relative residual 1e-2", {"tol": 1e-2, "max_iter": 200}),
        ("CG to relative residual 1e-3", {"tol": 1e-3, "max_iter": 200}),
        ("CG to relative residual 1e-6", {"tol": 1e-6, "max_iter": 200}),
        ("Jacobi PCG, 5 iterations", {"max_iter": 5, "preconditioner": "jacobi"}),
        ("Jacobi PCG, 10 iterations", {"max_iter": 10, "preconditioner": "jacobi"}),
        (f"CG, 10 iterations, HVPs on n/2 = {n // 2} rows", {"max_iter": 10, "hvp_rows": n // 2}),
        (f"CG, 10 iterations, HVPs on n/5 = {n // 5} rows", {"max_iter": 10, "hvp_rows": n // 5}),
        ("CG to 1e-12 (the exact path of the strategies' default)", {"tol": 1e-12}),
        ("Jacobi PCG to 1e-12", {"tol": 1e-12, "preconditioner": "jacobi"}),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=2_000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--pool", type=int, default=5_000)
    parser.add_argument("--s", type=float, default=1.0)
    parser.add_argument("--damping", type=float, default=0.1, help="δ per training row, at least")
    parser.add_argument(
        "--train", choices=["sgdf", "lbfgs"], default="sgdf",
        help="sgdf: as the scoring benchmark (H indefinite, damped); lbfgs: fitted to a "
        "minimum (H positive definite; with --damping 0 no damping, the harder system)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from alloop.linalg import Inverse
    from alloop.models.mlp import MLP
    from alloop.regularity import sld_scores
    from alloop.regularity.hypergradient import validation_tensors
    from alloop.tangent import regularity_rhs

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    X_pool, _ = gaussian_classes(args.pool, args.features, 10, rng)
    X, y = gaussian_classes(args.n_train, args.features, 10, rng)
    X_val, y_val = gaussian_classes(args.n_val, args.features, 10, rng)
    if args.train == "sgdf":
        options = {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "epochs": 2,
                   "batch_size": 128, "track_tangent": True}
    else:
        options = {"optimizer": "lbfgs", "tol": 1e-8, "max_iter": 3000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # L-BFGS short of tol still serves
        model = MLP(
            hidden=tuple(args.hidden), activation="tanh", s=args.s, seed=0, **options
        ).fit(X, y)
    n, p = len(y), model.theta_.numel()

    started = time.process_time()
    H = dense_hessian(model)
    hessian_cpu = time.process_time() - started
    Q = model.null_space()
    high = float(torch.linalg.eigvalsh(H)[-1])
    # the spectrum off the flat directions Q (projected out of every solve)
    low = float(torch.linalg.eigvalsh(H + 2.0 * high * Q @ Q.T)[0])
    delta = max(args.damping * n, 1.5 * max(0.0, -low))
    started = time.process_time()
    L = torch.linalg.cholesky(H + delta * torch.eye(p, dtype=H.dtype) + Q @ Q.T)
    factor_cpu = time.process_time() - started

    def exact(b: torch.Tensor) -> torch.Tensor:
        b = b - Q @ (Q.T @ b)
        x = torch.cholesky_solve(b.unsqueeze(1), L)[:, 0]
        return x - Q @ (Q.T @ x)

    tangent = model.tangent_ if args.train == "sgdf" else -exact(regularity_rhs(model))
    theta_hat = tangent / tangent.norm()
    Xv, yv = validation_tensors(model, X_val, y_val)
    g_val = torch.func.grad(lambda t: model.loss(t, Xv, yv).sum())(model.theta_)
    q_exact, u_exact = exact(theta_hat), exact(g_val)
    reference = sld_scores(model, X_pool, tangent=q_exact)

    lines = [
        "| solve | rel. error q | rel. error u | Spearman STI vs exact | CPU s (q) | HVPs (q) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| dense H ({p}²) by HVP columns, then Cholesky (the reference) | 0 | 0 | 1 | "
        f"{hessian_cpu + factor_cpu:.3g} | {p} |",
    ]
    for label, options in variants(n):
        inverse = Inverse(model, "cg", damping=delta, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # capped CG warns
            started = time.process_time()
            try:
                q = inverse(theta_hat)
                seconds = time.process_time() - started
                u = inverse(g_val)
            except ValueError:  # e.g. a subsampled H that is not positive definite
                lines.append(f"| {label} | fails: CG met non-positive curvature | | | | |")
                continue
        products = _count_products(model, theta_hat, delta, options)
        err_q = float((q - q_exact).norm() / q_exact.norm())
        err_u = float((u - u_exact).norm() / u_exact.norm())
        rho = spearmanr(sld_scores(model, X_pool, tangent=q), reference)[0]
        lines.append(
            f"| {label} | {err_q:.2e} | {err_u:.2e} | {rho:.6f} | {seconds:.3g} | {products} |"
        )
    header = [
        "# MLP solves: cheap vs exact",
        "",
        f"Command: `python benchmarks/solve_accuracy.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"MLP {args.features}-{'-'.join(map(str, args.hidden))}-10 (tanh, p = {p}), trained by "
        f"{args.train} on n = {n} rows, s = {args.s}; pool {args.pool} rows for the Spearman of STI scores; "
        f"validation {args.n_val} rows for u. λ(H) off the flat output-bias direction ∈ [{low:.4g}, {high:.4g}], damping δ = "
        f"{delta:.4g} (κ(H + δI) ≈ {(high + delta) / (low + delta):.3g}). torch "
        f"{torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}. CPU s = time.process_time of the q solve (the Jacobi "
        "rows include building the diagonal).",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def _count_products(model: Any, b: Any, delta: float, options: dict[str, Any]) -> int | str:
    """Hessian-vector products the q solve used: by replaying it with a counting operator
    (plain CG over all rows), or its budget for the preconditioned / subsampled variants
    ("not counted" without one)."""
    from alloop.linalg import conjugate_gradient, hvp_fn

    if options.get("preconditioner") or options.get("hvp_rows"):
        return options.get("max_iter", "not counted")
    hvp, calls = hvp_fn(model), [0]

    def op(v: Any) -> Any:
        calls[0] += 1
        return hvp(v) + delta * v

    Q = model.null_space()
    b = b - Q @ (Q.T @ b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        conjugate_gradient(op, b, tol=options.get("tol", 1e-12), max_iter=options.get("max_iter"))
    return calls[0]


if __name__ == "__main__":
    main()
