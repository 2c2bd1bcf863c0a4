"""Learning-curve statistics: area under the curve, labels to a target, bands, paired tests.

Pure functions over arrays (and, in :func:`summarize`, data frames): nothing here reads MLflow
or writes files. A learning curve is a metric measured after each round, against the number of
labels bought so far. Curves of runs that stopped early (a target or stability rule) keep their
last value to the end of the common label range: the model they stopped with is the one they
would deliver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: the fractions of the full-data model's metric whose label cost the summary reports.
REACH_FRACTIONS = (0.95, 0.99)


def normalized_auc(labels: Sequence[float], values: Sequence[float]) -> float:
    """Area under a learning curve divided by the width of its label range.

    The trapezoid rule over the measured points, divided by ``labels[-1] - labels[0]``: the
    curve's average metric per label bought, in the metric's own units (for accuracy, a number
    in [0, 1]). A one-point curve has its value as the average.

    Examples
    --------
    >>> normalized_auc([10, 20, 40], [0.5, 0.7, 0.8])
    0.7
    """
    x = np.asarray(labels, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"labels and values must be 1-D of one length; got {x.shape}, {y.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"labels must increase strictly; got {x.tolist()}")
    if len(x) == 1:
        return float(y[0])
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def reach_threshold(reference: float, fraction: float, lower_is_better: bool) -> float:
    """The metric value that counts as reaching ``fraction`` of a reference model's.

    ``fraction × reference`` for metrics to maximise (accuracy); ``reference / fraction`` for
    losses and errors (an RMSE within 1/0.95 of the full-data RMSE reaches "95 %").
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    return reference / fraction if lower_is_better else fraction * reference


def labels_to_reach(
    labels: Sequence[float], values: Sequence[float], threshold: float, lower_is_better: bool
) -> float:
    """Labels at the first point whose metric reaches ``threshold``; ``inf`` if none does.

    Examples
    --------
    >>> labels_to_reach([10, 20, 30], [0.6, 0.9, 0.8], 0.85, lower_is_better=False)
    20.0
    >>> labels_to_reach([10, 20], [0.6, 0.7], 0.85, lower_is_better=False)
    inf
    """
    y = np.asarray(values, dtype=np.float64)
    hit = y <= threshold if lower_is_better else y >= threshold
    first = np.flatnonzero(hit)
    return float(np.asarray(labels, dtype=np.float64)[first[0]]) if len(first) else math.inf


def align(labels: Sequence[float], values: Sequence[float], grid: Sequence[float]) -> np.ndarray:
    """A curve's values on another label grid: linear between points, held flat beyond its ends."""
    return np.interp(np.asarray(grid, np.float64), np.asarray(labels, np.float64),
                     np.asarray(values, np.float64))


def mean_band(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and a Student-t confidence band for it at each column.

    Returns ``(mean, low, high)``; with one seed the band is the mean itself.
    """
    from scipy import stats

    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf(0.5 + level / 2, n - 1) * curves.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of paired samples ``a`` and ``b``.

    1.0 when every pair is equal (no evidence of a difference), NaN with fewer than two pairs.
    SciPy's exact null distribution is used for small samples without ties; note that with
    n pairs the smallest attainable p-value is ``2 / 2**n`` (0.0625 for five seeds).
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have one length; got {len(x)} and {len(y)}")
    if len(x) < 2:
        return math.nan
    if np.all(x == y):
        return 1.0
    return float(stats.wilcoxon(x, y).pvalue)


def query_seconds(rounds: pd.DataFrame) -> np.ndarray:
    """Seconds each acquisition round spent choosing its queries (score + select).

    Round 0 (the random initial set) has no query time and is left out.
    """
    if "score_seconds" not in rounds:
        return np.empty(0)
    seconds = rounds["score_seconds"].to_numpy(np.float64)
    if "select_seconds" in rounds:
        seconds = seconds + rounds["select_seconds"].to_numpy(np.float64)
    return seconds[np.isfinite(seconds)]


def run_statistics(
    curves: pd.DataFrame,
    full: pd.DataFrame,
    metric: str,
    lower_is_better: bool,
    fractions: Sequence[float] = REACH_FRACTIONS,
) -> pd.DataFrame:
    """One row per run: final metric, normalised AUC, labels to reach each fraction, query time.

    Parameters
    ----------
    curves : DataFrame
        Long format, one row per (strategy, seed, round): columns ``strategy``, ``seed``,
        ``labels``, ``metric`` and optionally ``score_seconds``, ``select_seconds``.
    full : DataFrame
        One row per seed: ``seed`` and ``metric`` of the model fitted on the whole pool.
    metric : str
    lower_is_better : bool
    fractions : sequence of float

    Returns
    -------
    DataFrame
        Columns ``strategy``, ``seed``, ``final``, ``nauc``, ``labels_<pct>`` (one per
        fraction, ``inf`` when never reached) and ``query_seconds`` (median over rounds of
        score + select time).
    """
    grid = np.unique(curves["labels"].to_numpy(np.float64))
    reference = (
        dict(zip(full["seed"].tolist(), full[metric].tolist())) if metric in full else {}
    )
    rows = []
    for (strategy, seed), run in curves.groupby(["strategy", "seed"], sort=True):
        run = run.sort_values("labels")
        x, y = run["labels"].to_numpy(np.float64), run[metric].to_numpy(np.float64)
        row = {
            "strategy": strategy,
            "seed": seed,
            "final": float(y[-1]),
            "nauc": normalized_auc(grid, align(x, y, grid)),
        }
        for fraction in fractions:
            threshold = (
                reach_threshold(reference[seed], fraction, lower_is_better)
                if seed in reference else math.nan
            )
            row[f"labels_{round(fraction * 100)}"] = (
                labels_to_reach(x, y, threshold, lower_is_better) if seed in reference else math.nan
            )
        queried = query_seconds(run)
        row["query_seconds"] = float(np.median(queried)) if len(queried) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(
    curves: pd.DataFrame,
    full: pd.DataFrame,
    metric: str,
    lower_is_better: bool,
    baseline: str = "random",
    fractions: Sequence[float] = REACH_FRACTIONS,
) -> pd.DataFrame:
    """The comparison table: one row per strategy, best normalised AUC first.

    Columns: ``strategy``; ``seeds``; ``final_<metric>`` and ``final_<metric>_std`` (mean and
    standard deviation over seeds of the last point); ``nauc_<metric>`` and its ``_std``;
    ``labels_95``, ``labels_99`` (median over seeds of the labels needed to reach that fraction
    of the full-data model's metric; ``inf`` when the median seed never does); ``query_seconds``
    (median over every round of every seed); ``p_vs_<baseline>`` and ``p_vs_best`` (paired
    Wilcoxon signed-rank tests over seeds on the normalised AUC; NaN for the strategy itself).
    Only seeds every strategy ran are paired.
    """
    per_run = run_statistics(curves, full, metric, lower_is_better, fractions)
    if per_run.empty:
        raise ValueError("no runs to summarize")
    nauc = per_run.pivot(index="seed", columns="strategy", values="nauc")
    paired = nauc.dropna()  # seeds that every strategy finished
    means = per_run.groupby("strategy")["nauc"].mean()
    best = means.idxmin() if lower_is_better else means.idxmax()
    rows = []
    for strategy, runs in per_run.groupby("strategy", sort=False):
        row = {
            "strategy": strategy,
            "seeds": len(runs),
            f"final_{metric}": runs["final"].mean(),
            f"final_{metric}_std": runs["final"].std(ddof=1) if len(runs) > 1 else math.nan,
            f"nauc_{metric}": runs["nauc"].mean(),
            f"nauc_{metric}_std": runs["nauc"].std(ddof=1) if len(runs) > 1 else math.nan,
        }
        for fraction in fractions:
            name = f"labels_{round(fraction * 100)}"
            row[name] = float(np.median(runs[name].to_numpy(np.float64)))
        pooled = query_seconds(curves[curves["strategy"] == strategy])
        row["query_seconds"] = float(np.median(pooled)) if len(pooled) else math.nan
        for column, other in ((f"p_vs_{baseline}", baseline), ("p_vs_best", best)):
            row[column] = (
                paired_wilcoxon(paired[strategy], paired[other])
                if other in paired and strategy != other else math.nan
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.sort_values(f"nauc_{metric}", ascending=lower_is_better, kind="stable")
    return table.reset_index(drop=True)
