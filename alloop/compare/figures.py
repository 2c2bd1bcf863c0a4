"""The learning-curve figure of a comparison: mean over seeds per strategy, with a band.

The band is what few seeds can honestly say: none below three seeds (a t-interval from two
has a 12.7 × t-factor and fills the plot), a 95 % Student-t interval of the mean from three up
(or ± 1 standard deviation of the seeds, ``band="sd"``), cut at the values the seeds reached, and
named in the legend. Each strategy keeps one colour and line style in every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alloop.compare.stats import align, mean_band

#: figure size in inches and resolution; the PNG is FIGSIZE × DPI pixels.
FIGSIZE = (9.0, 5.0)
DPI = 120
#: fewest seeds for which a band is drawn.
MIN_SEEDS_FOR_BAND = 3
#: nine well-separated colours (matplotlib's tab10 without its grey, which is too near random's
#: black) and two line styles: 18 strategies tell apart, neighbours in the registry by colour.
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")
_STYLES = ("-", "--")


def strategy_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A stable ``{color, ls, lw}`` per strategy, the same in every figure; random is black.

    Registered strategies take their place in the registry's order (so a figure of three of
    them styles each as a figure of all would); other names follow, sorted.

    Examples
    --------
    >>> styles = strategy_styles(["random", "margin"])
    >>> styles["random"]["color"], styles["random"]["ls"]
    ('black', ':')
    """
    import strategies

    known = [n for n in strategies.available() if n != "random"]
    extra = sorted(n for n in names if n not in known and n != "random")
    styles = {}
    for name in names:
        if name == "random":
            styles[name] = {"color": "black", "ls": ":", "lw": 1.8}
            continue
        i = known.index(name) if name in known else len(known) + extra.index(name)
        i %= len(_COLORS) * len(_STYLES)
        styles[name] = {"color": _COLORS[i % len(_COLORS)], "ls": _STYLES[i // len(_COLORS)],
                        "lw": 1.4}
    return styles


def comparison_figure(
    curves: pd.DataFrame,
    metric: str,
    *,
    order: Sequence[str] | None = None,
    reference: float | None = None,
    title: str = "",
    level: float = 0.95,
    band: Literal["t", "sd"] = "t",
) -> Any:
    """The figure :func:`plot_comparison` saves (a matplotlib ``Figure``; close it when done)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    grid = np.unique(curves["labels"].to_numpy(np.float64))
    names = list(order) if order is not None else sorted(curves["strategy"].unique())
    styles = strategy_styles(names)
    observed = curves[metric].to_numpy(np.float64)
    observed = observed[np.isfinite(observed)]
    lo, hi = (observed.min(), observed.max()) if len(observed) else (0.0, 1.0)
    drawn = [observed]
    alpha = 0.15 if len(names) <= 4 else 0.07
    banded = []
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for name in names:
        runs = curves[curves["strategy"] == name]
        if runs.empty:
            continue
        matrix = np.vstack([
            align(run["labels"], run[metric], grid)
            for _, run in runs.sort_values("labels").groupby("seed")
        ])
        n = len(matrix)
        if band == "sd":
            mean = matrix.mean(axis=0)
            sd = matrix.std(axis=0, ddof=1) if n > 1 else np.zeros_like(mean)
            low, high = mean - sd, mean + sd
        else:
            mean, low, high = mean_band(matrix, level)
        ax.plot(grid, mean, label=f"{name} ({n})", **styles[name])
        if n >= MIN_SEEDS_FOR_BAND:  # cut at the values the seeds reached
            low, high = np.clip(low, lo, hi), np.clip(high, lo, hi)
            ax.fill_between(grid, low, high, color=styles[name]["color"], alpha=alpha, lw=0)
            banded.append(n)
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference, color="0.45", ls=(0, (1, 3)), lw=1.2, label="full data")
        drawn.append(np.array([reference]))
    values = np.concatenate(drawn)
    if len(values):
        pad = 0.04 * max(values.max() - values.min(), 1e-12)
        ax.set_ylim(values.min() - pad, values.max() + pad)
    ax.set_xlim(grid.min(), grid.max())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # counts
    ax.set_xlabel("labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if not banded:
        legend = f"mean over seeds\nno band: under {MIN_SEEDS_FOR_BAND} seeds"
    elif band == "sd":
        legend = "mean over seeds\nband: ± 1 s.d."
    else:
        legend = f"mean over seeds\nband: {level:.0%} t-interval"
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              title=legend + "\n(seeds in brackets)", title_fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.74, top=0.92, bottom=0.11)
    return fig


def plot_comparison(
    curves: pd.DataFrame,
    metric: str,
    paths: Sequence[str | Path],
    *,
    order: Sequence[str] | None = None,
    reference: float | None = None,
    title: str = "",
    level: float = 0.95,
    band: Literal["t", "sd"] = "t",
) -> list[Path]:
    """Save the mean learning curve of each strategy with a band over seeds.

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
        Confidence level of the t-interval band.
    band : {"t", "sd"}
        A Student-t interval of the mean over seeds, or ± 1 standard deviation of the seeds.
        Either is drawn only for strategies with at least :data:`MIN_SEEDS_FOR_BAND` seeds,
        cut at the range of the values drawn.

    Returns
    -------
    list of Path

    Examples
    --------
    >>> curves = pd.DataFrame({"strategy": ["margin"] * 6, "seed": [0, 0, 1, 1, 2, 2],
    ...                        "labels": [10, 20] * 3, "accuracy": [.5, .7, .6, .8, .55, .75]})
    >>> plot_comparison(curves, "accuracy", ["curves.png"])  # doctest: +SKIP
    [PosixPath('curves.png')]
    """
    import matplotlib.pyplot as plt

    fig = comparison_figure(curves, metric, order=order, reference=reference, title=title,
                            level=level, band=band)
    written = []
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        written.append(path)
    plt.close(fig)
    return written
