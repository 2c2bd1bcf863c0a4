"""The MovieLens experiment's table and figure, from its curves and final per-user rows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from ratings import CHECKPOINTS  # noqa: E402


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
