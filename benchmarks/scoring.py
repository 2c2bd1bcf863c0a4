"""Cost of SLD, STI and SSI scoring against uncertainty sampling, exact influence and plain SGD.

Past 400 lines: one benchmark script whose cases must run side by side on the same fitted model and pool to be comparable.

Side by side in one run, on the same fitted model and the same pool:

* GLMs — binary logistic regression (:class:`LogisticGLM`) and 10-class softmax regression
  (:class:`SoftmaxGLM`) on a ``--pool`` × ``--features`` pool (default 100,000 × 64), fitted by
  Newton on ``--n-train`` labeled rows;
* an MLP ``--features``-256-256-10 (tanh, :class:`alloop.models.mlp.MLP`) trained by minibatch
  SGD with the regularity tangent carried along (SGDF) on ``--mlp-train`` labeled rows, scoring
  the same pool.

For each model it times

* uncertainty sampling: ``strategies.get("least-confident").score(model, pool)`` — the baseline;
* SLD, STI, SSI: the registered strategy called as the loop calls it (unlabeled variants), and
  that call split into its per-fit part (θ̇; q = H⁻¹θ̂; SSI's directions and V'') and its pool
  pass (forward JVPs and closed forms over the pool, given those directions). The per-fit part
  is also shown ÷ the model's fit time;
* exact per-candidate influence: one H⁻¹g per candidate (g the candidate's gradient at the
  model's predicted label), then (ρ·H⁻¹g)², on ``--influence-subsample`` pool rows
  (``--mlp-influence-subsample`` for the MLP, whose solves are CG), extrapolated to the pool,
  ÷ the SLD call. For the GLMs it is checked against labeled SLD (the same number, (g·θ̇)²);
* training: the MLP's fit with and without tangent tracking (SGDF ÷ plain SGD, same epochs,
  batches and learning rates); also SGDF ÷ SGD for the logistic GLM via
  :func:`alloop.tangent.sgdf.sgdf_train` (closed-form GLM steps); ``--training-only`` times
  just these rows;
* for the GLMs, SSI's pool pass as first implemented (``output_jvp``, i.e. two matrix products,
  per direction) next to the current one (one product with the stacked weights of f, d, u
  and θ̇): "before" and "after" of that change.

Every timing is the median over ``--repeats`` calls after one untimed warm-up, measured with
``time.perf_counter`` (wall) and, beside it, ``time.process_time`` (this process's CPU time:
with one thread, what the call itself cost, far less perturbed by other work on a busy
machine). The calls of one model are interleaved, so load on the machine falls on all of them
alike; the load average is printed with the table. Targets (:data:`TARGETS`): issue #17's
for the softmax GLM (SLD, STI ≤ 1.5×, SSI ≤ 3× uncertainty sampling) and the MLP (STI ≤ 2.5×,
SSI ≤ 4×), issue #3's elsewhere (binary GLM SLD/STI ≤ 2×, MLP SLD ≤ 3×); SGDF training within
2× of plain training (issue #17).

Run from the repository root::

    .venv/bin/python benchmarks/scoring.py --threads 1 --out benchmarks/results/scoring.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


# --------------------------------------------------------------------------- timing
#: strategy-call ÷ uncertainty-sampling targets per model (issue #17's table, issue #3's elsewhere)
TARGETS: dict[str, dict[str, float]] = {
    "logistic (binary GLM)": {"SLD": 2.0, "STI": 2.0},
    "softmax (10-class GLM)": {"SLD": 1.5, "STI": 1.5, "SSI": 3.0},
    "MLP 64-256-256-10": {"SLD": 3.0, "STI": 2.5, "SSI": 4.0},
}


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds (``time.perf_counter``) and this process's CPU seconds
    (``time.process_time``). With one thread the CPU time is what the call itself costs, which
    a busy machine perturbs far less than the wall clock."""

    wall: float
    cpu: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def __mul__(self, k: float) -> Timing:
        return Timing(self.wall * k, self.cpu * k)


class Clock:
    """Start on creation; ``elapsed()`` is the Timing since then."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> Timing:
        return Timing(time.perf_counter() - self.wall, time.process_time() - self.cpu)


def median_times(
    calls: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True
) -> dict[str, Timing]:
    """Median wall and CPU seconds of each call over ``repeats`` interleaved rounds."""
    if warmup:
        for call in calls.values():
            call()
    times: dict[str, list[Timing]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            clock = Clock()
            call()
            times[name].append(clock.elapsed())
    return {
        name: Timing(statistics.median(t.wall for t in ts), statistics.median(t.cpu for t in ts))
        for name, ts in times.items()
    }


@dataclass
class Row:
    model: str
    quantity: str
    time: Timing | None
    reference: Timing | None = None  # the ratio's denominator
    ratio_of: str = ""
    target: float | None = None
    note: str = ""

    def ratios(self) -> tuple[float, float] | None:
        if self.time is None or self.reference is None:
            return None
        return self.time.wall / self.reference.wall, self.time.cpu / self.reference.cpu

    def met(self) -> str:
        ratios = self.ratios()
        if self.target is None or ratios is None:
            return ""
        return " / ".join("yes" if r <= self.target else "NO" for r in ratios)


# --------------------------------------------------------------------------- data
def gaussian_classes(
    n: int, d: int, n_classes: int, rng: np.random.Generator, separation: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """x = μ_y + ε, y uniform over the classes, μ_c ~ N(0, separation²·I), ε ~ N(0, I)."""
    means = separation * rng.standard_normal((n_classes, d))
    y = rng.integers(n_classes, size=n)
    return means[y] + rng.standard_normal((n, d)), y


# --------------------------------------------------------------------------- pieces
def legacy_pool_pass(
    model: Any, X: Any, directions: list[Any], closed_form: Callable[..., Any], batch_size: int
) -> np.ndarray:
    """The pool pass as first implemented: ``model.output_jvp`` per direction and row batch
    (for a GLM two matrix products per direction), then the closed form — the "before"."""
    from alloop.models.tensors import as_features

    Xt = as_features(X)
    out = np.empty(Xt.shape[0])
    for start in range(0, Xt.shape[0], batch_size):
        block = Xt[start : start + batch_size]
        f, fdots = None, []
        for v in directions:
            out_f, fdot = model.output_jvp(model.theta_, block, v)
            f = out_f.detach() if f is None else f
            fdots.append(fdot.detach())
        out[start : start + batch_size] = closed_form(f, fdots).detach().numpy()
    return out


def exact_influence(
    model: Any,
    X_sub: np.ndarray,
    *,
    method: str,
    damping: float = 0.0,
    cg_iters: int | None = None,
) -> tuple[Timing, Timing, np.ndarray, np.ndarray]:
    """(per-fit time, time per candidate, scores, labels): (ρ·H⁻¹g)² candidate by candidate.

    ``method="exact"``: H (plus the null-space projector, as :func:`alloop.linalg.solve` does)
    is factored once, then one triangular solve per candidate. ``method="cg"``: one conjugate-
    gradient solve per candidate with Hessian-vector products over the training set, at most
    ``cg_iters`` iterations (so the extrapolation is a lower bound for a converged solve).
    """
    import torch

    from alloop.linalg import hessian, hvp_fn
    from alloop.linalg.solve import conjugate_gradient
    from alloop.models.tensors import as_features
    from alloop.tangent.rhs import regularity_rhs

    theta = model.theta_
    Xt = as_features(X_sub)
    labels = np.asarray(model.predict(X_sub))
    yt = model.encode_y(labels)
    Q = model.null_space()
    clock = Clock()
    rho = regularity_rhs(model)
    if method == "exact":
        H = hessian(model)
        if damping:
            H = H + damping * torch.eye(H.shape[0], dtype=H.dtype)
        if Q is not None:
            H = H + Q @ Q.T
        L = torch.linalg.cholesky(H)

        def apply_inverse(g: torch.Tensor) -> torch.Tensor:
            return torch.cholesky_solve(g.unsqueeze(1), L)[:, 0]

    else:
        hvp = hvp_fn(model)

        def apply_inverse(g: torch.Tensor) -> torch.Tensor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the capped CG warns
                return conjugate_gradient(lambda v: hvp(v) + damping * v, g, max_iter=cg_iters)

    per_fit = clock.elapsed()
    scores = np.empty(len(labels))
    clock = Clock()
    for i in range(len(labels)):
        g = model.per_point_grads(theta, Xt[i : i + 1], yt[i : i + 1])[0]
        if Q is not None:
            g = g - Q @ (Q.T @ g)
        scores[i] = float(rho @ apply_inverse(g)) ** 2
    per_candidate = clock.elapsed() * (1.0 / len(labels))
    return per_fit, per_candidate, scores, labels


# --------------------------------------------------------------------------- one model
def bench_model(
    name: str,
    model: Any,
    fit_time: Timing,
    X_pool: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    target: dict[str, float],
    repeats: int,
    per_fit_repeats: int,
    influence_rows: int,
    tangent_method: str,
    solve_method: str,
    damping: float,
    solve_options: dict[str, Any] | None,
    influence_method: str,
    cg_iters: int | None,
    batch_size: int,
) -> list[Row]:
    """Every scoring row of one fitted model."""
    import strategies
    from alloop.models.glm import GLM
    from alloop.regularity import heuristics as hx
    from alloop.regularity import sld_scores, ssi_directions, ssi_scores, sti_direction
    from alloop.tangent import regularity_tangent

    rows: list[Row] = [Row(name, "fit", fit_time)]
    options = {"tangent_method": tangent_method, "damping": damping, "batch_size": batch_size}
    solve_kw = {"solve_method": solve_method, "solve_options": solve_options}
    ssi_kw = {"X_val": X_val, "y_val": y_val, "s_bounds": None}
    tangent_kw = {} if tangent_method == "sgdf" else {"damping": damping, **(solve_options or {})}

    def tangent() -> Any:
        return regularity_tangent(model, tangent_method, **tangent_kw)

    def sti_q() -> Any:  # θ̇ and q, as the STI strategy computes them (one factorization)
        return sti_direction(
            model,
            tangent_method=tangent_method,
            solve_method=solve_method,
            damping=damping,
            solve_options=solve_options,
        )

    def directions() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # V'' floor / capped CG
            return ssi_directions(
                model,
                X_val,
                y_val,
                tangent_method=tangent_method,
                solve_method=solve_method,
                damping=damping,
                solve_options=solve_options,
                bounds=None,
            )

    def quiet(call: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return call()

        return run

    us, sld, sti, ssi = (strategies.get(k) for k in ("least-confident", "sld", "sti", "ssi"))
    theta_dot = tangent()
    try:
        q, dirs = quiet(sti_q)(), directions()
    except ValueError as exc:  # CG met negative curvature: raise --mlp-damping
        rows.append(Row(name, "STI / SSI per-fit solves", None, note=f"failed: {exc}"))
        q = dirs = None

    # Cheap, pool-sized calls: many interleaved repeats.
    pool_calls = {
        "uncertainty": lambda: us.score(model, X_pool),
        "sld": lambda: sld.score(model, X_pool, **options),
        "sld pool pass": lambda: sld_scores(
            model, X_pool, tangent=theta_dot, batch_size=batch_size
        ),
    }
    # Calls dominated by per-fit solves (expensive for the MLP): fewer repeats.
    fit_calls: dict[str, Callable[[], Any]] = {"tangent": tangent}
    if q is not None:
        pool_calls["sti pool pass"] = lambda: sld_scores(
            model, X_pool, tangent=q, batch_size=batch_size
        )
        pool_calls["ssi pool pass"] = lambda: ssi_scores(
            model, X_pool, directions=dirs, batch_size=batch_size
        )
        if isinstance(model, GLM):
            lik, v2 = model.likelihood, dirs.curvature
            pool_calls["ssi pool pass (before)"] = lambda: legacy_pool_pass(
                model,
                X_pool,
                [dirs.d, dirs.u, dirs.tangent],
                lambda f, fd: hx.ssi(lik, f, fd[0], fd[1], fd[2], v2, None, model.sigma2),
                batch_size,
            )
        fit_calls.update(
            {
                "q": sti_q,
                "ssi directions": directions,
                "sti": quiet(lambda: sti.score(model, X_pool, **options, **solve_kw)),
                "ssi": quiet(lambda: ssi.score(model, X_pool, **options, **solve_kw, **ssi_kw)),
            }
        )
    pool = median_times(pool_calls, repeats)
    per_fit = median_times(fit_calls, per_fit_repeats, warmup=per_fit_repeats > 1)

    base = pool["uncertainty"]
    rows.append(Row(name, "uncertainty sampling (least-confident)", base, base, "US"))
    calls = {"SLD": pool["sld"]}
    parts = {"SLD": ("tangent θ̇", per_fit["tangent"], pool["sld pool pass"])}
    if q is not None:
        calls.update(STI=per_fit["sti"], SSI=per_fit["ssi"])
        parts["STI"] = ("θ̇ and q = H⁻¹θ̂", per_fit["q"], pool["sti pool pass"])
        parts["SSI"] = ("θ̇, u, d, V''", per_fit["ssi directions"], pool["ssi pool pass"])
    for heuristic, seconds in calls.items():
        goal = target.get(heuristic)
        rows.append(Row(name, f"{heuristic} (strategy call)", seconds, base, "US", goal))
        what, fit_part, pool_part = parts[heuristic]
        rows.append(
            Row(
                name,
                f"  per fit: {what}",
                fit_part,
                fit_time,
                "fit",
                note="once per fit, amortised over the pool",
            )
        )
        rows.append(Row(name, "  pool pass", pool_part, base, "US", goal))
    if "ssi pool pass (before)" in pool:
        before = pool["ssi pool pass (before)"]
        rows.append(
            Row(name, "  SSI pool pass, before (output_jvp per direction)", before, base, "US")
        )

    # Exact per-candidate influence on a subsample, extrapolated to the pool.
    X_sub = X_pool[:influence_rows]
    try:
        fit_part, per_candidate, scores, labels = exact_influence(
            model, X_sub, method=influence_method, damping=damping, cg_iters=cg_iters
        )
    except ValueError as exc:
        rows.append(Row(name, "exact influence", None, note=f"failed: {exc}"))
        return rows
    total = fit_part + per_candidate * X_pool.shape[0]
    note = f"{influence_rows} candidates timed, × {X_pool.shape[0]:,}"
    if influence_method == "exact":
        reference = sld_scores(model, X_sub, labels, tangent=theta_dot)
        err = float(np.max(np.abs(scores - reference)) / np.max(np.abs(reference)))
        note += f"; = labeled SLD to {err:.1e} rel."
    else:
        note += f"; CG capped at {cg_iters} iterations (a lower bound)"
    rows.append(
        Row(
            name,
            "exact influence, one H⁻¹g per candidate (extrapolated)",
            total,
            calls["SLD"],
            "SLD",
            note=note,
        )
    )
    return rows


# --------------------------------------------------------------------------- sections
def glm_sections(args: argparse.Namespace, X_pool, X_train, y_train, X_val, y_val) -> list[Row]:
    from alloop.models import LogisticGLM, SoftmaxGLM
    from alloop.tangent.sgdf import sgdf_train

    rows: list[Row] = []
    binary = lambda y: (y % 2).astype(int)  # noqa: E731 - even vs odd classes
    for name, make, to_y in (
        ("logistic (binary GLM)", lambda: LogisticGLM(s=args.s), binary),
        ("softmax (10-class GLM)", lambda: SoftmaxGLM(s=args.s), lambda y: y),
    ):
        if args.training_only and not name.startswith("logistic"):
            continue  # the training rows are the binary GLM's only
        model = make().fit(X_train, to_y(y_train))
        if not args.training_only:
            fit = median_times(
                {"fit": lambda m=make, t=to_y: m().fit(X_train, t(y_train))}, args.repeats
            )["fit"]
            rows += bench_model(
                name,
                model,
                fit,
                X_pool,
                X_val,
                to_y(y_val),
                target=TARGETS.get(name, {}),
                repeats=args.repeats,
                per_fit_repeats=args.repeats,
                influence_rows=args.influence_subsample,
                tangent_method="exact",
                solve_method="exact",
                damping=0.0,
                solve_options=None,
                influence_method="exact",
                cg_iters=None,
                batch_size=args.batch_size,
            )
        if name.startswith("logistic"):
            train = {
                track: (
                    lambda tr=track, m=model: sgdf_train(
                        m, epochs=args.epochs, batch_size=args.sgd_batch, lr=0.05, track_tangent=tr
                    )
                )
                for track in (True, False)
            }
            t = median_times({str(k): v for k, v in train.items()}, args.repeats)
            rows.append(Row(name, f"SGD training, {args.epochs} epochs (sgdf_train)", t["False"]))
            rows.append(
                Row(
                    name,
                    "SGDF training, same epochs",
                    t["True"],
                    t["False"],
                    "SGD",
                    2.0,
                    note=f"{len(model.theta_)} parameters, closed-form steps (no autograd)",
                )
            )
    return rows


def mlp_section(args: argparse.Namespace, X_pool, X_train, y_train, X_val, y_val) -> list[Row]:
    from alloop.models.mlp import MLP

    def make(track: bool) -> MLP:
        return MLP(
            hidden=(256, 256),
            activation="tanh",
            s=args.mlp_s,
            optimizer="sgd",
            lr=args.mlp_lr,
            momentum=0.9,
            epochs=args.epochs,
            batch_size=args.sgd_batch,
            seed=0,
            track_tangent=track,
        )

    Xm, ym = X_train[: args.mlp_train], y_train[: args.mlp_train]
    train = median_times(
        {"sgdf": lambda: make(True).fit(Xm, ym), "sgd": lambda: make(False).fit(Xm, ym)},
        args.train_repeats,
    )
    name = f"MLP {X_pool.shape[1]}-256-256-10"
    training = [
        Row(name, f"plain SGD training, {args.epochs} epochs", train["sgd"]),
        Row(name, "SGDF training, same epochs", train["sgdf"], train["sgd"], "SGD", 2.0),
    ]
    if args.training_only:
        return training
    model = make(True).fit(Xm, ym)
    rows = bench_model(
        name,
        model,
        train["sgdf"],
        X_pool,
        X_val,
        y_val,
        target=TARGETS.get(name, {}),
        repeats=args.mlp_repeats,
        per_fit_repeats=1,
        influence_rows=args.mlp_influence_subsample,
        tangent_method="sgdf",
        solve_method="cg",
        damping=args.mlp_damping * len(ym),
        solve_options={"max_iter": args.cg_iters},
        influence_method="cg",
        cg_iters=args.cg_iters,
        batch_size=args.batch_size,
    )
    rows[0].quantity = f"fit (SGDF, {args.epochs} epochs on {len(ym):,} rows)"
    hvp = hvp_comparison(model, args.mlp_repeats)
    rows.append(
        Row(
            name,
            "HVP over the training set, alloop.linalg.hvp_fn (VJP of the linearised gradient)",
            hvp["hvp_fn"],
            hvp["hvp_fn"],
            "itself",
            note="one CG iteration of the solves",
        )
    )
    rows.append(
        Row(
            name,
            "  building hvp_fn (one gradient with its graph kept)",
            hvp["hvp_fn build"],
            hvp["hvp_fn"],
            "hvp_fn",
            note="once per fit (per Inverse)",
        )
    )
    for label, key in (("forward over reverse (jvp of grad; hvp_fn before)", "jvp of grad"),
                       ("reverse over reverse (double backward)", "double backward")):
        rows.append(
            Row(name, f"HVP, {label}", hvp[key], hvp["hvp_fn"], "hvp_fn",
                note="same product to 1e-10")
        )
    return rows + training


def hvp_comparison(model: Any, repeats: int) -> dict[str, Timing]:
    """Seconds of one Hessian-vector product over the training set, two ways."""
    import torch

    from alloop.linalg import hvp_fn

    X, y, theta = model.X_train_, model.y_train_, model.theta_
    v = torch.randn_like(theta)
    saved = hvp_fn(model)  # the gradient linearised once; one reverse pass per product
    grad = torch.func.grad(lambda t: model.objective(t, X, y))

    def forward_over_reverse() -> torch.Tensor:  # hvp_fn before: the gradient redone each time
        return torch.func.jvp(grad, (theta,), (v,))[1]

    def double_backward() -> torch.Tensor:
        leaf = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model.objective(leaf, X, y), leaf, create_graph=True)
        return torch.autograd.grad(g @ v, leaf)[0]

    a, b, c = saved(v), forward_over_reverse(), double_backward()
    assert float((a - b).norm() / a.norm()) < 1e-10, "the HVPs disagree"
    assert float((a - c).norm() / a.norm()) < 1e-10, "the HVPs disagree"
    return median_times(
        {
            "hvp_fn": lambda: saved(v),
            "hvp_fn build": lambda: hvp_fn(model),
            "jvp of grad": forward_over_reverse,
            "double backward": double_backward,
        },
        repeats,
    )


# --------------------------------------------------------------------------- report
def table(rows: list[Row]) -> str:
    lines = [
        "| model | quantity | wall s | ratio (wall) | CPU s | ratio (CPU) | target | met "
        "(wall / CPU) | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        wall = cpu = ratio_wall = ratio_cpu = ""
        if r.time is not None:
            wall, cpu = f"{r.time.wall:.4g}", f"{r.time.cpu:.4g}"
        ratios = r.ratios()
        if ratios is not None:
            ratio_wall, ratio_cpu = (f"{x:.3g}× {r.ratio_of}" for x in ratios)
        target = "" if r.target is None else f"≤ {r.target:g}×"
        lines.append(
            f"| {r.model} | {r.quantity} | {wall} | {ratio_wall} | {cpu} | {ratio_cpu} | "
            f"{target} | {r.met()} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=100_000, help="pool rows (default 100,000)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=2_000, help="GLM labeled rows")
    parser.add_argument("--mlp-train", type=int, default=10_000, help="MLP training rows")
    parser.add_argument("--n-val", type=int, default=500, help="validation rows for SSI")
    parser.add_argument("--s", type=float, default=0.0, help="GLM regularity s = log λ")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats for the GLMs")
    parser.add_argument("--mlp-repeats", type=int, default=3, help="timed repeats, MLP scoring")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed MLP trainings each")
    parser.add_argument("--epochs", type=int, default=2, help="SGD/SGDF epochs")
    parser.add_argument("--sgd-batch", type=int, default=128, help="SGD minibatch size")
    parser.add_argument("--mlp-s", type=float, default=1.0, help="MLP regularity s = log λ")
    parser.add_argument("--mlp-lr", type=float, default=0.02, help="MLP SGD learning rate")
    parser.add_argument(
        "--mlp-damping",
        type=float,
        default=0.1,
        help="damping of the MLP's CG solves per training row (δ = this × n): "
        "after SGD the network's H is indefinite",
    )
    parser.add_argument("--cg-iters", type=int, default=10, help="CG budget per MLP solve")
    parser.add_argument("--influence-subsample", type=int, default=2_000)
    parser.add_argument("--mlp-influence-subsample", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per JVP batch")
    parser.add_argument("--models", nargs="+", default=["glm", "mlp"], choices=["glm", "mlp"])
    parser.add_argument(
        "--training-only",
        action="store_true",
        help="only the SGD and SGDF training rows (binary GLM, MLP): no scoring",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    X_pool, _ = gaussian_classes(args.pool, args.features, 10, rng)
    n_lab = max(args.n_train, args.mlp_train)
    X_train, y_train = gaussian_classes(n_lab, args.features, 10, rng)
    X_val, y_val = gaussian_classes(args.n_val, args.features, 10, rng)
    X_glm, y_glm = X_train[: args.n_train], y_train[: args.n_train]

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[Row] = []
    with threadpool_limits(limits=args.threads):
        if "glm" in args.models:
            rows += glm_sections(args, X_pool, X_glm, y_glm, X_val, y_val)
        if "mlp" in args.models:
            rows += mlp_section(args, X_pool, X_train, y_train, X_val, y_val)
    elapsed = time.perf_counter() - started

    command = "python benchmarks/scoring.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = [
        "# Scoring cost: SLD / STI / SSI vs uncertainty sampling, exact influence, SGDF",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Pool {args.pool:,} × {args.features}; GLMs fitted on {args.n_train:,} rows, the MLP "
        f"on {min(args.mlp_train, n_lab):,}; SSI validation {args.n_val:,} rows. Medians of "
        f"{args.repeats} (GLM) / {args.mlp_repeats} (MLP scoring) / {args.train_repeats} (MLP "
        "training) timed calls after a warm-up; MLP per-fit solves timed once. "
        f"torch {torch.__version__}, {args.threads} thread(s), Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, 1-minute "
        f"load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end; "
        f"total {elapsed:.0f} s.",
        "",
        "Ratios: US = over uncertainty sampling on the same model and pool; fit = over the "
        "model's fit; SLD = over the SLD strategy call; SGD = over plain SGD training. "
        "Wall = time.perf_counter, CPU = time.process_time of this process.",
        "",
    ]
    text = "\n".join(header) + table(rows) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
