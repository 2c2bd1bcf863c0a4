"""The learning-curve figure of a comparison: mean and 95 % band over seeds per strategy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alloop.compare.stats import align, mean_band

#: figure size in inches and resolution; the PNG is FIGSIZE × DPI pixels.
FIGSIZE = (9.0, 5.0)
DPI = 120


def _colors(names: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A stable colour per strategy name, the same in every figure; random is black."""
    import matplotlib

    import strategies

    tab20 = matplotlib.colormaps["tab20"].colors
    palette = tab20[0::2] + tab20[1::2]  # the ten dark shades first, then the light ones
    known = [n for n in strategies.available() if n != "random"]
    colors = {}
    for name in names:
        index = known.index(name) if name in known else len(known) + sorted(names).index(name)
        colors[name] = (0.0, 0.0, 0.0) if name == "random" else palette[index % len(palette)]
    return colors


def plot_comparison(
    curves: pd.DataFrame,
    metric: str,
    paths: Sequence[str | Path],
    *,
    order: Sequence[str] | None = None,
    reference: float | None = None,
    title: str = "",
    level: float = 0.95,
) -> list[Path]:
    """Save the mean learning curve of each strategy with a confidence band over seeds.

    Parameters
    ----------
    curves : DataFrame
        Long format: ``strategy``, ``seed``, ``labels`` and ``metric``.
    metric : str
    paths : sequence of path
        One file per format, by suffix (``.png``, ``.svg``, ``.pdf``).
    order : sequence of str, optional
        Legend order (default: sorted names).
    reference : float, optional
        The full-data model's metric, drawn as a dotted line.
    title : str
    level : float
        Confidence level of the band (Student-t interval of the mean over seeds).

    Returns
    -------
    list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.unique(curves["labels"].to_numpy(np.float64))
    names = list(order) if order is not None else sorted(curves["strategy"].unique())
    colors = _colors(names)
    observed = curves[metric].to_numpy(np.float64)
    observed = observed[np.isfinite(observed)]
    shown = []  # every value drawn, for the y-limits
    alpha = 0.15 if len(names) <= 4 else 0.07
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for name in names:
        runs = curves[curves["strategy"] == name]
        if runs.empty:
            continue
        matrix = np.vstack([
            align(run["labels"], run[metric], grid)
            for _, run in runs.sort_values("labels").groupby("seed")
        ])
        mean, low, high = mean_band(matrix, level)
        style = {"ls": "--", "lw": 1.6} if name == "random" else {"lw": 1.3}
        ax.plot(grid, mean, color=colors[name], label=f"{name} ({len(matrix)})", **style)
        ax.fill_between(grid, low, high, color=colors[name], alpha=alpha, lw=0)
        shown.append(np.clip(np.concatenate([low, high]), observed.min(), observed.max()))
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference, color="0.45", ls=":", lw=1.2, label="full data")
    if shown:  # bands are cut at the values seeds reached: wider says "few seeds", no more
        drawn = np.concatenate(shown)
        if reference is not None and np.isfinite(reference):
            drawn = np.append(drawn, reference)
        pad = 0.04 * max(drawn.max() - drawn.min(), 1e-12)
        ax.set_ylim(drawn.min() - pad, drawn.max() + pad)
    ax.set_xlabel("labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              title=f"mean, {level:.0%} band (seeds)", title_fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.76, top=0.92, bottom=0.11)
    written = []
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        written.append(path)
    plt.close(fig)
    return written
