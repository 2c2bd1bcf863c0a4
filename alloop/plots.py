"""Plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_learning_curve(curve: pd.DataFrame, metric: str, path: str | Path, title: str = "") -> Path:
    """Save ``metric`` against the number of labels as a PNG (or SVG, by suffix).

    What ``alloop run`` writes to ``reports/<name>/`` and logs to MLflow for one run.

    Examples
    --------
    >>> curve = pd.DataFrame({"labels": [20, 30, 40], "accuracy": [0.6, 0.7, 0.75]})
    >>> plot_learning_curve(curve, "accuracy", "curve.png")  # doctest: +SKIP
    PosixPath('curve.png')
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(curve["labels"], curve[metric], marker="o", ms=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # labels are counts
    ax.set_xlabel("labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
