"""Polynomial ridge regression with automatic regularity: SLD, SSI, STI against random and max-std.

The paper's §3.3 example. A noisy smooth function on [-1, 1] is fitted by ridge regression
(:class:`alloop.models.LinearGLM`) on polynomial features of high degree. Every round the loop
chooses the regularity s* = log λ* on a fixed validation split by the hypergradient
(:class:`alloop.regularity.AutoRegularity`, warm-started from last round's s*), then the
strategy picks the next pool point. Each (strategy, seed) is one :class:`alloop.ActiveLoop`
run logged to MLflow (a parent run, one nested run per round with RMSE and s).

Outputs, in ``--out`` (default: this folder): ``curves.csv`` (every round of every run),
``results.md`` (the table) and ``learning_curves.png`` (mean ± 95% band).

Usage::

    .venv/bin/python experiments/polynomial/run.py experiments/polynomial/config.yaml \\
        --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from numpy.polynomial import legendre
from scipy import stats

from alloop.loop import LoopSettings

HERE = Path(__file__).resolve().parent

#: noise-free targets on [-1, 1], chosen by name in the config.
TARGETS = {
    "sin-cos": lambda x: np.sin(3.0 * x) + 0.5 * np.cos(7.0 * x),
    "runge": lambda x: 1.0 / (1.0 + 25.0 * x**2),
}
BASES = ("legendre", "monomial")


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Config:
    """The experiment's settings (see config.yaml for their meaning)."""

    name: str = "polynomial"
    seeds: int = 10
    strategies: tuple[str, ...] = ("sld", "ssi", "sti", "random", "max-std")
    target: str = "sin-cos"
    noise_std: float = 0.3
    pool_size: int = 500
    validation_size: int = 40
    test_size: int = 1000
    degree: int = 12
    basis: str = "legendre"
    sigma2: float | None = 0.09  # None: estimated jointly with θ (docs/math.md §1)
    s_bounds: tuple[float, float] = (-10.0, 10.0)
    initial: int = 5
    batch_size: int = 1
    budget: int = 60
    label_counts: tuple[int, ...] = (10, 20, 30, 45, 60)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        raw = yaml.safe_load(Path(path).read_text())
        sections = {k: raw.get(k, {}) for k in ("data", "model", "loop", "report")}
        flat = {k: v for k, v in raw.items() if k not in sections}
        for section in sections.values():
            flat.update(section)
        unknown = set(flat) - set(cls.__dataclass_fields__) - {"raw"}
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        for key in ("strategies", "s_bounds", "label_counts"):
            if key in flat:
                flat[key] = tuple(flat[key])
        config = cls(**flat, raw=raw)
        if config.target not in TARGETS:
            raise ValueError(f"unknown target {config.target!r}; expected one of {sorted(TARGETS)}")
        if config.basis not in BASES:
            raise ValueError(f"unknown basis {config.basis!r}; expected one of {BASES}")
        return config


# --------------------------------------------------------------------------- data
def features(x: np.ndarray, degree: int, basis: str) -> np.ndarray:
    """φ_k(x) for k = 1..degree (the model adds the intercept), shape (n, degree).

    The Legendre features √(2k+1)·P_k(x) have unit mean square under U[-1, 1], so the penalty
    ½‖w‖² weighs every degree alike; monomials x^k shrink with k and are nearly collinear.
    """
    if basis == "legendre":
        k = np.arange(1, degree + 1)
        return legendre.legvander(x, degree)[:, 1:] * np.sqrt(2 * k + 1)
    return np.stack([x**k for k in range(1, degree + 1)], axis=1)


@dataclass
class Data:
    x_pool: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray  # noise-free f(x)


def make_data(config: Config, seed: int) -> Data:
    """One seed's pool, validation and test sets (the same for every strategy)."""
    rng = np.random.default_rng([20241115, seed])
    f = TARGETS[config.target]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-1.0, 1.0, size=n)
        return x, f(x) + config.noise_std * rng.normal(size=n)

    x_pool, y_pool = draw(config.pool_size)
    x_val, y_val = draw(config.validation_size)
    x_test = rng.uniform(-1.0, 1.0, size=config.test_size)
    phi = lambda x: features(x, config.degree, config.basis)  # noqa: E731
    return Data(x_pool, phi(x_pool), y_pool, phi(x_val), y_val, phi(x_test), f(x_test))


# --------------------------------------------------------------------------- one run
def run_one(
    config: Config, strategy: str, seed: int, tracking_uri: str | None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """One ActiveLoop run; returns its learning curve and run-level counts."""
    from alloop import ActiveLoop, Pool
    from alloop.models import LinearGLM
    from alloop.regularity import AutoRegularity
    from oracles import SimulatedOracle

    data = make_data(config, seed)
    pool = Pool(data.X_pool)
    oracle = SimulatedOracle(dict(zip(pool.ids, data.y_pool, strict=True)))
    selections: list[Any] = []
    hook = AutoRegularity(bounds=config.s_bounds, on_select=selections.append)
    tracker = None
    if tracking_uri is not None:
        from alloop.tracking import MlflowTracker

        tracker = MlflowTracker(config.name, tracking_uri)
    params = {
        **config.raw,
        "strategy": strategy,
        "seed": seed,
        "model": {**config.raw.get("model", {}), "kind": "LinearGLM", "auto_regularity": True},
    }
    loop = ActiveLoop(
        pool,
        LinearGLM(s=0.0, sigma2=config.sigma2),
        strategy,
        oracle,
        settings=LoopSettings(
            initial=config.initial,
            batch_size=config.batch_size,
            rounds=None,
            budget=config.budget,
            seed=seed,
            progress=False,
        ),
        X_test=data.X_test,
        y_test=data.y_test,
        X_val=data.X_val,
        y_val=data.y_val,
        strategy_params={"s_bounds": config.s_bounds} if strategy == "ssi" else {},
        regularity=hook,
        tracker=tracker,
        run_name=f"{strategy}-seed{seed}",
        params=params,
    )
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loop.run()
    seconds = time.perf_counter() - started
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    counts = {
        "seconds": seconds,
        "rounds_s_at_bound": float(sum(info.at_bound for info in selections)),
        "selections": float(len(selections)),
        "ssi_curvature_warnings": float(sum(m.startswith("SSI:") for m in messages)),
        "other_runtime_warnings": float(sum(not m.startswith("SSI:") for m in messages)),
    }
    if tracker is not None and result.run_id is not None:
        tracker.existing_run(result.run_id).log_metrics({f"run.{k}": v for k, v in counts.items()})
    curve = result.curve[["round", "labels", "rmse", "s"]].assign(strategy=strategy, seed=seed)
    return curve, counts


# --------------------------------------------------------------------------- summary
def normalised_auc(labels: np.ndarray, rmse: np.ndarray) -> float:
    """Area under RMSE(labels) by the trapezoid rule over the label span, ÷ that span."""
    return float(np.trapezoid(rmse, labels) / (labels[-1] - labels[0]))


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def summarise(curves: pd.DataFrame, runs: pd.DataFrame, config: Config) -> str:
    """The markdown results table (plus a paired comparison with random)."""
    per_run = (
        curves.sort_values("labels")
        .groupby(["strategy", "seed"])
        .apply(lambda g: normalised_auc(g["labels"].to_numpy(), g["rmse"].to_numpy()))
        .rename("auc")
        .reset_index()
    )
    order = [s for s in config.strategies if s in set(curves["strategy"])]
    counts = [c for c in config.label_counts if c in set(curves["labels"])]
    header = (
        "| strategy | "
        + " | ".join(f"RMSE @ {c}" for c in counts)
        + " | nAUC | nAUC − random (paired) | seeds better than random | mean s* | "
        "s* at lower / upper bound | seconds/run |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    base = per_run[per_run.strategy == "random"].set_index("seed")["auc"]
    for name in order:
        sub = curves[curves.strategy == name]
        cells = []
        for c in counts:
            m, h = mean_ci(sub[sub.labels == c]["rmse"].to_numpy())
            cells.append(f"{m:.3f} ± {h:.3f}")
        auc = per_run[per_run.strategy == name].set_index("seed")["auc"]
        m, h = mean_ci(auc.to_numpy())
        cells.append(f"{m:.3f} ± {h:.3f}")
        if name != "random" and len(base):
            diff = (auc - base).dropna()
            dm, dh = mean_ci(diff.to_numpy())
            cells.append(f"{dm:+.3f} ± {dh:.3f}")
            cells.append(f"{int((diff < 0).sum())}/{len(diff)}")
        else:
            cells += ["—", "—"]
        s_rounds = sub["s"].dropna()
        lo, hi = config.s_bounds
        low = np.isclose(s_rounds, lo, rtol=0.0, atol=1e-9).mean()
        high = np.isclose(s_rounds, hi, rtol=0.0, atol=1e-9).mean()
        cells.append(f"{s_rounds.mean():.2f}")
        cells.append(f"{100 * low:.0f}% / {100 * high:.0f}%")
        cells.append(f"{runs[runs.strategy == name]['seconds'].mean():.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n_seeds = curves["seed"].nunique()
    notes = [
        "",
        f"Mean ± 95% t-interval half-width over {n_seeds} seeds. RMSE against the noise-free "
        f"f(x) on {config.test_size} test points. nAUC: area under the RMSE curve from "
        f"{int(curves.labels.min())} to {int(curves.labels.max())} labels divided by that span "
        "(the curve's mean RMSE; lower is better). Paired: per-seed nAUC minus random's on the "
        "same data and initial set. mean s*: s = log λ chosen each round, averaged over rounds "
        "and seeds. s* at lower / upper bound: share of those rounds whose s* is the bound of "
        f"the search interval {tuple(config.s_bounds)} (the lower bound: the least "
        "regularized fit is best on validation; the upper: a nearly constant fit is).",
    ]
    return "\n".join(lines + notes) + "\n"


def plot(curves: pd.DataFrame, config: Config, path: Path) -> None:
    """Mean RMSE and mean s* against labels, with 95% t-bands, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=130)
    for name in config.strategies:
        sub = curves[curves.strategy == name]
        if sub.empty:
            continue
        for axis, column in ((ax, "rmse"), (ax_s, "s")):
            rows = [
                (labels, *mean_ci(group[column].to_numpy()))
                for labels, group in sub.groupby("labels")
            ]
            x, m, h = (np.array(v) for v in zip(*rows, strict=True))
            h = np.nan_to_num(h)
            (line,) = axis.plot(x, m, label=name, lw=1.6)
            axis.fill_between(x, m - h, m + h, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("labels")
    ax.set_ylabel("test RMSE vs noise-free f (log scale)")
    ax.set_title(
        f"degree-{config.degree} {config.basis} ridge, automatic s*, "
        f"{curves.seed.nunique()} seeds (mean ± 95%)",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax_s.set_xlabel("labels")
    ax_s.set_ylabel("selected s* = log λ*")
    ax_s.set_title("regularity chosen on the validation split", fontsize=9)
    ax_s.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(HERE / "config.yaml"))
    parser.add_argument(
        "--tracking-uri",
        default="sqlite:///mlflow.db",
        help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory)",
    )
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument("--seeds", type=int, default=None, help="override the config's seeds")
    parser.add_argument("--strategies", nargs="+", default=None, help="override the strategies")
    parser.add_argument("--out", default=str(HERE), help="folder for curves.csv, results.md, PNG")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="rebuild results.md and the PNG from curves.csv and runs.csv in --out",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    config = Config.load(args.config)
    if args.seeds is not None or args.strategies is not None:
        config = Config(
            **{
                **{k: getattr(config, k) for k in config.__dataclass_fields__},
                "seeds": args.seeds if args.seeds is not None else config.seeds,
                "strategies": tuple(args.strategies or config.strategies),
            }
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarise_only:
        write_outputs(pd.read_csv(out / "curves.csv"), pd.read_csv(out / "runs.csv"), config, out)
        return
    uri = None if args.no_tracking else args.tracking_uri
    curves, runs = [], []
    for seed in range(config.seeds):
        for strategy in config.strategies:
            curve, counts = run_one(config, strategy, seed, uri)
            curves.append(curve)
            runs.append({"strategy": strategy, "seed": seed, **counts})
            last = curve.iloc[-1]
            print(
                f"{strategy:>8} seed {seed}: RMSE {last.rmse:.4f} at {int(last.labels)} labels, "
                f"s* {last.s:+.2f}, {counts['seconds']:.1f}s",
                flush=True,
            )
    curves_df = pd.concat(curves, ignore_index=True)
    runs_df = pd.DataFrame(runs)
    curves_df.to_csv(out / "curves.csv", index=False)
    runs_df.to_csv(out / "runs.csv", index=False)
    write_outputs(curves_df, runs_df, config, out)


def write_outputs(curves: pd.DataFrame, runs: pd.DataFrame, config: Config, out: Path) -> None:
    """results.md and learning_curves.png from the per-round curves."""
    table = summarise(curves, runs, config)
    (out / "results.md").write_text(table)
    plot(curves, config, out / "learning_curves.png")
    print(table)


if __name__ == "__main__":
    main()
