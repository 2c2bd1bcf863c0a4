"""alloop beside its peers on the same job, in one run: scikit-activeml (rounds) and dattri (influence).

Past 400 lines: one benchmark script whose two comparisons (rounds, influence) share the data sets, seeds and report.

**Rounds.** For each data set, strategy and seed, alloop's :class:`alloop.ActiveLoop` (a
softmax or logistic GLM, s = 0, with a simulated oracle) and scikit-activeml 1.0.1 (its
``SklearnClassifier(LogisticRegression(C=1, tol=1e-8))`` and the matching query strategy) start
from the same initial ids and take the same number of rounds of the same batch size, one after
the other (A then B within each seed, so both see the same machine load). LogisticRegression
with C = 1 minimises Σ loss + ½‖w‖² with a free intercept: alloop's objective at s = −log C = 0.
Reported per (data, strategy): medians over all timed rounds of

* round s — fit + query (alloop: the loop's own ``fit_seconds + score_seconds +
  select_seconds``; scikit-activeml: ``clf.fit`` + ``qs.query(..., fit_clf=False)``),
* query s — the query alone,
* ratio — alloop's median round over scikit-activeml's (≤ 1 means alloop is no slower),
* picks — Jaccard overlap of the two final labeled sets, and both final test accuracies.

**Influence.** alloop's exact influence of every training point on a validation loss
(closed-form GLM Hessian, one Cholesky) and by conjugate gradients (batched over right-hand
sides), against dattri's ``IFAttributorExplicit`` and ``IFAttributorCG`` on the same binary
logistic model (dattri penalises nothing unless told: its ``regularization`` is our λ, and the
model has no intercept so both penalise every parameter). Values (max relative difference) and
medians of interleaved timings.

**Profile.** cProfile of one alloop digits run (margin), the top entries by cumulative time.

Run from the repository root (single-threaded, niced; a few minutes)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice .venv/bin/python benchmarks/peers.py \\
        --seeds 3 --rounds 15 --out benchmarks/results/peers.md
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # dattri's progress bars

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

STRATEGIES = ("margin", "entropy", "random", "coreset")


# ----------------------------------------------------------------------------- data
def datasets(n_synthetic: int, seed: int = 0) -> dict[str, tuple[np.ndarray, ...]]:
    """name → (X_pool, y_pool, X_test, y_test)."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    out = {"digits": (X[:1200] / 16.0, y[:1200], X[1200:] / 16.0, y[1200:])}
    rng = np.random.default_rng(seed)
    d, k = 64, 10
    means = 0.6 * rng.standard_normal((k, d))
    yy = rng.integers(k, size=n_synthetic + 5000)
    XX = means[yy] + rng.standard_normal((len(yy), d))
    out[f"synthetic {n_synthetic // 1000}k×64"] = (
        XX[:n_synthetic], yy[:n_synthetic], XX[n_synthetic:], yy[n_synthetic:],
    )
    Xb, yb = load_breast_cancer(return_X_y=True)
    perm = np.random.default_rng(1).permutation(len(yb))
    Xb = StandardScaler().fit_transform(Xb[perm])
    yb = yb[perm]
    out["breast-cancer (tabular)"] = (Xb[:400], yb[:400], Xb[400:], yb[400:])
    return out


# ----------------------------------------------------------------------------- alloop
def run_alloop(data, strategy, initial, rounds, batch, seed, profile=None):
    from alloop import ActiveLoop, LoopSettings, Pool
    from alloop.models import LogisticGLM, SoftmaxGLM
    from oracles import SimulatedOracle

    Xp, yp, Xt, yt = data
    classes = np.unique(yp)
    pool = Pool(Xp)
    oracle = SimulatedOracle(dict(zip(pool.ids, yp, strict=True)))
    model = (LogisticGLM if len(classes) == 2 else SoftmaxGLM)(s=0.0)
    loop = ActiveLoop(
        pool,
        model,
        strategy,
        oracle,
        settings=LoopSettings(
            initial=[str(i) for i in initial],
            batch_size=batch,
            rounds=rounds,
            seed=seed,
            progress=False,
        ),
        X_test=Xt,
        y_test=yt,
        classes=classes,
    )
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    result = loop.run()
    if profile is not None:
        profile.disable()
    wall = time.perf_counter() - start
    curve = result.curve[result.curve["round"] >= 1]
    round_s = (curve["fit_seconds"] + curve["score_seconds"] + curve["select_seconds"]).tolist()
    query_s = (curve["score_seconds"] + curve["select_seconds"]).tolist()
    labeled = {int(i) for i in result.pool.ids[result.pool.labeled_indices()]}
    acc = float(result.curve["accuracy"].iloc[-1])
    return round_s, query_s, labeled, acc, wall / (len(curve) + 1)


# ----------------------------------------------------------------------------- skactiveml
def run_skactiveml(data, strategy, initial, rounds, batch, seed):
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import CoreSet, RandomSampling, UncertaintySampling
    from skactiveml.utils import MISSING_LABEL
    from sklearn.linear_model import LogisticRegression

    Xp, yp, Xt, yt = data
    classes = np.unique(yp)
    y = np.full(len(yp), MISSING_LABEL)
    y[initial] = yp[initial]
    clf = SklearnClassifier(
        LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000), classes=classes, random_state=seed
    )
    if strategy in ("margin", "entropy"):
        qs = UncertaintySampling(method="margin_sampling" if strategy == "margin" else "entropy",
                                 random_state=seed)
        query = lambda: qs.query(Xp, y, clf, fit_clf=False, batch_size=batch)  # noqa: E731
    elif strategy == "random":
        qs = RandomSampling(random_state=seed)
        query = lambda: qs.query(Xp, y, batch_size=batch)  # noqa: E731
    else:
        qs = CoreSet(random_state=seed)
        query = lambda: qs.query(Xp, y, batch_size=batch)  # noqa: E731
    round_s, query_s = [], []
    clf.fit(Xp, y)
    for _ in range(rounds):
        t0 = time.perf_counter()
        clf.fit(Xp, y)
        t1 = time.perf_counter()
        picked = query()
        t2 = time.perf_counter()
        round_s.append(t2 - t0)
        query_s.append(t2 - t1)
        y[picked] = yp[picked]
    clf.fit(Xp, y)
    acc = float((clf.predict(Xt) == yt).mean())
    return round_s, query_s, set(np.flatnonzero(~np.isnan(y)).tolist()), acc


# ----------------------------------------------------------------------------- influence
def influence_rows(n_train: int, d: int, n_val: int, repeats: int) -> list[dict[str, Any]]:
    """alloop exact / CG influence vs dattri explicit / CG on one logistic model."""
    import torch

    from alloop.linalg import solve
    from alloop.models import LogisticGLM

    try:
        from dattri.algorithm.influence_function import IFAttributorCG, IFAttributorExplicit
        from dattri.task import AttributionTask
    except ImportError as err:  # pragma: no cover - optional peer
        return [{"error": f"dattri is not installed ({err}); pip install dattri==0.3.0 --no-deps"}]

    rng = np.random.default_rng(0)
    w = rng.standard_normal(d)
    X = rng.standard_normal((n_train + n_val, d))
    y = (X @ w + rng.standard_normal(len(X)) > 0).astype(float)
    Xtr, ytr, Xv, yv = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    lam = 1.0
    model = LogisticGLM(s=np.log(lam), fit_intercept=False).fit(Xtr, ytr)
    theta = model.theta_
    Xt_tr, yt_tr = model.X_train_, model.y_train_
    Xt_v, yt_v = torch.as_tensor(Xv), model.encode_y(yv)

    def alloop_scores(method: str) -> torch.Tensor:
        G = model.per_point_grads(theta, Xt_tr, yt_tr)  # (n, p)
        Gv = model.per_point_grads(theta, Xt_v, yt_v)  # (m, p)
        options = {"tol": 1e-10} if method == "cg" else {}
        V = solve(model, Gv.T, method, **options)  # (p, m): H⁻¹ g_val, every validation point
        return G @ V  # (n, m): g_iᵀ H⁻¹ g_j (dattri's sign and layout)

    net = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(theta.view(1, -1))

    def loss_func(params, data):
        xb, yb = data
        out = torch.func.functional_call(net, params, xb)[:, 0]
        return torch.nn.functional.binary_cross_entropy_with_logits(out, yb, reduction="sum")

    task = AttributionTask(loss_func=loss_func, model=net, checkpoints=net.state_dict())
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(Xtr), torch.as_tensor(ytr)), batch_size=n_train
    )
    val_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(Xv), torch.as_tensor(yv)), batch_size=n_val
    )

    def dattri_scores(kind: str) -> torch.Tensor:
        # dattri's Hessian is of the summed loss over the train loader plus
        # ``regularization``·I: our H = Σ ∇²ℓ + λI (no intercept, so λ penalises all of θ).
        if kind == "explicit":
            att = IFAttributorExplicit(task, regularization=lam)
        else:
            # dattri's CG ignores ``tol`` and runs exactly max_iter steps (0/0 = nan once the
            # residual vanishes), so it gets p steps: exact CG's count in exact arithmetic
            att = IFAttributorCG(task, regularization=lam, max_iter=d)
        att.cache(train_loader)
        return att.attribute(train_loader, val_loader)

    rows = []
    for a_method, d_kind in (("exact", "explicit"), ("cg", "cg")):
        ta, tb = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            va = alloop_scores(a_method)
            ta.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vb = dattri_scores(d_kind)
            tb.append(time.perf_counter() - t0)
        vb = vb.to(va.dtype)
        # dattri scores −g_valᵀH⁻¹g_train or +; compare up to the convention's sign
        sign = 1.0 if float((va * vb).sum()) >= 0 else -1.0
        rel = float((va - sign * vb).abs().max() / va.abs().max())
        rows.append(dict(
            method=f"alloop {a_method} vs dattri {d_kind}", n=n_train, p=d, m=n_val,
            alloop_s=statistics.median(ta), dattri_s=statistics.median(tb),
            ratio=statistics.median(ta) / statistics.median(tb), max_rel_diff=rel,
            sign="same" if sign > 0 else "opposite",
        ))
    return rows


# ----------------------------------------------------------------------------- the fit alone
def fit_rows(repeats: int) -> list[dict[str, Any]]:
    """Digits, 150 labels, 10 classes: dense Newton (the old path), Newton-CG, scikit-learn."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from alloop.models import SoftmaxGLM

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    idx = np.random.default_rng(0).choice(len(X), 150, replace=False)
    fits = {
        "alloop dense Newton (before)": lambda: SoftmaxGLM(s=0.0, solver="newton").fit(
            X[idx], y[idx], classes=range(10)),
        "alloop Newton-CG (now, default)": lambda: SoftmaxGLM(s=0.0).fit(
            X[idx], y[idx], classes=range(10)),
        "scikit-learn LogisticRegression(tol=1e-8)": lambda: LogisticRegression(
            C=1.0, tol=1e-8, max_iter=10_000).fit(X[idx], y[idx]),
    }
    times: dict[str, list[float]] = {k: [] for k in fits}
    for _ in range(repeats):  # interleaved
        for name, fit in fits.items():
            t0 = time.perf_counter()
            fit()
            times[name].append(time.perf_counter() - t0)
    ref = statistics.median(times["scikit-learn LogisticRegression(tol=1e-8)"])
    return [dict(fit=k, seconds=statistics.median(v), ratio=statistics.median(v) / ref)
            for k, v in times.items()]


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--synthetic-rounds", type=int, default=5)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--influence-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    import skactiveml

    rows = []
    profile = cProfile.Profile()
    for name, data in datasets(args.synthetic).items():
        rounds = args.synthetic_rounds if name.startswith("synthetic") else args.rounds
        for strategy in args.strategies.split(","):
            A, B, Aq, Bq, jac, acc_a, acc_b, walls = [], [], [], [], [], [], [], []
            for seed in range(args.seeds):
                rng = np.random.default_rng(100 + seed)
                yp = data[1]
                # one of each class first (both libraries need every class), then random
                first = [int(rng.choice(np.flatnonzero(yp == c))) for c in np.unique(yp)]
                rest = rng.permutation(np.setdiff1d(np.arange(len(yp)), first))
                initial = np.array(first + rest[: args.initial - len(first)].tolist())
                prof = profile if (name == "digits" and strategy == "margin" and seed == 0) else None
                ra, qa, la, aa, wall = run_alloop(data, strategy, initial, rounds, args.batch, seed, prof)
                rb, qb, lb, ab = run_skactiveml(data, strategy, initial, rounds, args.batch, seed)
                A += ra
                B += rb
                Aq += qa
                Bq += qb
                walls.append(wall)
                jac.append(len(la & lb) / len(la | lb))
                acc_a.append(aa)
                acc_b.append(ab)
            row = dict(
                data=name, strategy=strategy, rounds=len(A),
                alloop_round=statistics.median(A), skal_round=statistics.median(B),
                ratio=statistics.median(A) / statistics.median(B),
                alloop_query=statistics.median(Aq), skal_query=statistics.median(Bq),
                alloop_loop_wall=statistics.median(walls),
                jaccard=statistics.mean(jac), acc_alloop=statistics.mean(acc_a),
                acc_skal=statistics.mean(acc_b),
            )
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    fit_table = fit_rows(7)
    for r in fit_table:
        print(r, flush=True)
    influence = influence_rows(1000, 30, 100, args.influence_repeats)
    for r in influence:
        print(r, flush=True)

    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(25)
    prof_text = "\n".join(
        line for line in stream.getvalue().splitlines()
        if line.strip() and not line.startswith(("   Ordered", "   List reduced"))
    )
    prof_text = prof_text.replace(str(Path(__file__).resolve().parents[1]) + "/", "")

    lines = [
        "# alloop beside scikit-activeml and dattri (benchmarks/peers.py)",
        "",
        f"Python {platform.python_version()}, torch {torch.__version__}, scikit-activeml "
        f"{skactiveml.__version__}, one thread (torch and BLAS), {os.cpu_count()} CPUs shared "
        "with other jobs; A and B interleaved per seed. Command:",
        "",
        "    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice .venv/bin/python benchmarks/peers.py "
        f"--seeds {args.seeds} --rounds {args.rounds} --synthetic {args.synthetic} "
        f"--synthetic-rounds {args.synthetic_rounds} --out benchmarks/results/peers.md",
        "",
        f"Job: logistic regression C = 1 (alloop s = 0), {args.initial} initial labels (one per "
        f"class, then random; the same ids for both), rounds of {args.batch}; "
        f"{args.seeds} seeds. Round = fit + query; seconds are medians over all rounds.",
        "",
        "| data | strategy | rounds | alloop round s | skactiveml round s | ratio | alloop query s "
        "| skactiveml query s | alloop loop s/round (all of it) | picks Jaccard | acc alloop "
        "| acc skactiveml |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['strategy']} | {r['rounds']} | {r['alloop_round']:.4f} | "
            f"{r['skal_round']:.4f} | **{r['ratio']:.2f}×** | {r['alloop_query']:.4f} | "
            f"{r['skal_query']:.4f} | {r['alloop_loop_wall']:.4f} | {r['jaccard']:.3f} | "
            f"{r['acc_alloop']:.4f} | {r['acc_skal']:.4f} |"
        )
    lines += [
        "",
        "\"alloop loop s/round\" is the whole `ActiveLoop.run()` wall time per round: also the "
        "oracle, the label store, test-set metrics and the tracker, which scikit-activeml's "
        "round (a bare fit + query) does not do.",
        "",
        "## The fit alone (digits, 150 labels, 10 classes, s = 0; medians of 7, interleaved)",
        "",
        "| fit | s | ÷ scikit-learn |",
        "|---|---|---|",
        *[f"| {r['fit']} | {r['seconds']:.4f} | {r['ratio']:.2f}× |" for r in fit_table],
        "",
        "## Influence: alloop vs dattri 0.3.0 (binary logistic, no intercept, λ = 1)",
        "",
        "dattri's CG ignores its `tol` and runs exactly `max_iter` steps (after convergence its "
        "0/0 step gives nan), so it is given p steps; alloop's CG runs to relative residual "
        "1e-10, all right-hand sides batched.",
        "",
    ]
    if influence and "error" in influence[0]:
        lines.append(influence[0]["error"])
    else:
        lines += [
            "| comparison | n train | p | m val | alloop s | dattri s | ratio | max rel diff | sign |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in influence:
            lines.append(
                f"| {r['method']} | {r['n']} | {r['p']} | {r['m']} | {r['alloop_s']:.4f} | "
                f"{r['dattri_s']:.4f} | **{r['ratio']:.2f}×** | {r['max_rel_diff']:.1e} | {r['sign']} |"
            )
    lines += [
        "",
        "## Profile of the round (alloop, digits, margin, seed 0, cProfile cumulative)",
        "",
        "```",
        prof_text,
        "```",
        "",
    ]
    text = "\n".join(lines)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
