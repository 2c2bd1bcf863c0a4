"""``alloop report``: figures, tables and tests of a comparison, from MLflow, into a folder.

:func:`report` reads one experiment's finished runs (any tracking URI), writes

- ``learning_curves.png`` / ``.svg`` — mean and 95 % band over seeds per strategy;
- ``summary.csv`` / ``summary.md`` — the table of :func:`alloop.compare.stats.summarize`;
- ``runs.csv`` — the same statistics per (strategy, seed) run;

and logs them as artifacts of a new ``summary`` run in the experiment. :func:`write_page`
collects several experiments' reports into one markdown page (``experiments/RESULTS.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alloop.compare.runs import SUMMARY, Comparison, load_comparison
from alloop.compare.stats import run_statistics, summarize

FIGURE = "learning_curves"


@dataclass
class Report:
    """What :func:`report` produced."""

    experiment: str
    metric: str
    lower_is_better: bool
    table: pd.DataFrame
    per_run: pd.DataFrame
    runs: Comparison
    files: list[Path]
    summary_run_id: str | None


def _fmt(value: float, digits: int = 4) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _labels(value: float, most: int) -> str:
    if math.isnan(value):
        return "—"
    return f"> {most}" if math.isinf(value) else f"{value:.0f}"


def describe(runs: Comparison) -> str:
    """One line on the data, model and budget the runs share (from their MLflow params)."""
    p = runs.params
    full = runs.full
    pool = f"pool {int(full['labels'].iloc[0])} items, " if "labels" in full and len(full) else ""
    text = f", text column `{p['data.text_column']}`" if p.get("data.text_column") not in (None, "None") else ""
    target = f" (target `{p['data.target']}`)" if p.get("data.target") not in (None, "None") else ""
    cap = f", subsampled to {p['data.max_items']}" if p.get("data.max_items") not in (None, "None") else ""
    strength = [f"{k} = {p[f'model.{k}']}" for k in ("C", "s", "alpha") if p.get(f"model.{k}") not in (None, "None")]
    curves = runs.curves
    varies = "s" in curves and bool((curves.groupby("run_id")["s"].nunique() > 1).any())
    rule = "s = log λ chosen each round on validation data" if varies else "fixed s"
    return (
        f"`{p.get('data.source', '?')}`{target}{text}{cap}: {runs.task}, {pool}"
        f"model `{p.get('model.kind', '?')}` ({', '.join([*strength, rule])}); "
        f"{p.get('loop.initial', '?')} random initial labels, "
        f"then {p.get('loop.rounds', '?')} rounds of {p.get('loop.batch_size', '?')}; "
        f"{len(runs.seeds)} seeds ({', '.join(map(str, runs.seeds))})."
    )


def markdown_table(table: pd.DataFrame, metric: str, most_labels: int, baseline: str = "random") -> str:
    """The summary table as GitHub markdown; the best row in bold."""
    head = [
        "strategy", f"final {metric}", f"nAUC {metric}", "labels to 95 %", "labels to 99 %",
        "query s / round", f"p vs {baseline}", "p vs best",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in table.iterrows():
        name = f"**{row['strategy']}**" if i == 0 else row["strategy"]
        cells = [
            name,
            f"{_fmt(row[f'final_{metric}'])} ± {_fmt(row[f'final_{metric}_std'])}",
            f"{_fmt(row[f'nauc_{metric}'])} ± {_fmt(row[f'nauc_{metric}_std'])}",
            _labels(row["labels_95"], most_labels),
            _labels(row["labels_99"], most_labels),
            _fmt(row["query_seconds"], 3),
            _p(row[f"p_vs_{baseline}"]),
            _p(row["p_vs_best"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(rep: Report, figure: str, heading: str = "##") -> str:
    """A report as a markdown section: setting, reference, table, figure, definitions."""
    runs, metric = rep.runs, rep.metric
    direction = "lower" if rep.lower_is_better else "higher"
    full = runs.full
    if metric in full and len(full):
        values = full[metric].to_numpy(np.float64)
        spread = f" ± {values.std(ddof=1):.4f}" if len(values) > 1 else ""
        reference = f"Full-data model (every pool item labeled): {metric} {values.mean():.4f}{spread}."
    else:
        reference = "No full-data model was logged, so labels-to-95/99 % are not available."
    most = int(runs.curves["labels"].max())
    n = len(runs.seeds)
    return "\n".join([
        f"{heading} {rep.experiment}",
        "",
        describe(runs),
        f"Metric: test {metric} ({direction} is better). {reference}",
        "",
        markdown_table(rep.table, metric, most),
        "",
        f"![{rep.experiment} learning curves]({figure})",
        "",
        f"Mean ± standard deviation over seeds. nAUC: area under the learning curve divided by its "
        f"label range (the average {metric} over the budget). Labels to 95/99 %: median over seeds "
        f"of the labels at which a run first reaches that fraction of its seed's full-data "
        f"{metric}" + (" (for errors: within 1/0.95, 1/0.99 of it)" if rep.lower_is_better else "")
        + f"; `> {most}`: not reached within the budget. Query time: median over rounds of "
        f"scoring + batch selection. p: two-sided Wilcoxon signed-rank test on the nAUC, paired "
        f"by seed; with {n} seeds the smallest possible p is {2 / 2**n:.3g}.",
        "",
    ])


def report(
    experiment: str,
    tracking_uri: str | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    metric: str | None = None,
    log: bool = True,
) -> Report:
    """Write the learning curves, table and tests of a comparison, and log them to MLflow.

    Parameters
    ----------
    experiment : str
        The MLflow experiment of an ``alloop compare``.
    tracking_uri : str, optional
        Any MLflow tracking URI (default ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
    out : path, optional
        Folder for the files (default ``reports/<experiment>``).
    metric : str, optional
        Curve metric to compare (default accuracy, or RMSE for regression).
    log : bool
        Log the files as artifacts of a new ``summary`` run of the experiment.

    Returns
    -------
    Report

    Examples
    --------
    >>> rep = report("digits", out="reports/digits")  # doctest: +SKIP
    >>> rep.table[["strategy", "nauc_accuracy", "p_vs_random"]]  # doctest: +SKIP
    """
    from alloop.compare.figures import plot_comparison
    from alloop.metrics import LOWER_IS_BETTER, default_metric
    from alloop.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    runs = load_comparison(experiment, uri)
    metric = metric or default_metric(runs.task)
    if metric not in runs.curves:
        from alloop.metrics import check_metric_name

        check_metric_name(metric)  # a misspelt name says so, with the close ones
        metrics = [c for c in runs.curves if c not in ("strategy", "seed", "run_id", "labels")]
        raise ValueError(
            f"the runs of {experiment!r} have no metric {metric!r}; they have {metrics}. Add it "
            f"to loop.metrics and rerun (alloop compare --force)"
        )
    lower = metric in LOWER_IS_BETTER
    table = summarize(runs.curves, runs.full, metric, lower)
    per_run = run_statistics(runs.curves, runs.full, metric, lower)
    folder = Path(out) if out is not None else Path("reports") / experiment
    folder.mkdir(parents=True, exist_ok=True)

    reference = float(runs.full[metric].mean()) if metric in runs.full and len(runs.full) else None
    files = plot_comparison(
        runs.curves, metric, [folder / f"{FIGURE}.png", folder / f"{FIGURE}.svg"],
        order=table["strategy"].tolist(), reference=reference, title=experiment,
    )
    table.to_csv(folder / "summary.csv", index=False)
    per_run.to_csv(folder / "runs.csv", index=False)
    rep = Report(experiment, metric, lower, table, per_run, runs, [], None)
    (folder / "summary.md").write_text(section(rep, f"{FIGURE}.png", heading="#"))
    rep.files = [*files, folder / "summary.csv", folder / "summary.md", folder / "runs.csv"]
    if log:
        rep.summary_run_id = _log_summary(rep, uri)
    return rep


def _log_summary(rep: Report, uri: str) -> str:
    """The summary as a one-off run of the experiment (tag ``alloop=summary``)."""
    from alloop.tracking.mlflow_tracker import MlflowTracker

    metric = rep.metric
    values = {}
    for _, row in rep.table.iterrows():
        for column, key in ((f"nauc_{metric}", "nauc"), (f"final_{metric}", "final"),
                            ("labels_95", "labels_95"), ("labels_99", "labels_99"),
                            ("p_vs_random", "p_vs_random"), ("p_vs_best", "p_vs_best")):
            if np.isfinite(row[column]):
                values[f"{key}.{row['strategy']}"] = float(row[column])
    with MlflowTracker(rep.runs.experiment, uri).one_off_run("summary", tags={"alloop": SUMMARY}) as run:
        run.log_params({"metric": metric, "seeds": str(len(rep.runs.seeds)),
                        "strategies": ",".join(rep.table["strategy"])})
        run.log_metrics(values)
        for path in rep.files:
            run.log_artifact(path)
    return run.run_id


def overview(reports: Sequence[Report]) -> str:
    """Markdown: the best strategy of each data set, and each strategy's mean rank."""
    lines = [
        "| data set | metric | best (nAUC) | runner-up | random | best vs random: p |",
        "|---|---|---|---|---|---|",
    ]
    ranks: dict[str, list[float]] = {}
    for rep in reports:
        t, m = rep.table, rep.metric
        best = t.iloc[0]
        second = t.iloc[1] if len(t) > 1 else None
        random = t[t["strategy"] == "random"]
        lines.append(
            f"| {rep.experiment} | {m} | {best['strategy']} ({best[f'nauc_{m}']:.4f}) | "
            + (f"{second['strategy']} ({second[f'nauc_{m}']:.4f})" if second is not None else "—")
            + " | " + (f"{random[f'nauc_{m}'].iloc[0]:.4f}" if len(random) else "—")
            + f" | {_p(best['p_vs_random'])} |"
        )
        for position, name in enumerate(t["strategy"]):  # 0 = best, 1 = worst
            ranks.setdefault(name, []).append(position / max(len(t) - 1, 1))
    order = sorted(ranks, key=lambda k: np.mean(ranks[k]))
    lines += [
        "",
        "Mean relative rank by nAUC over the data sets a strategy ran on (0 = best of its data "
        "set, 1 = worst):",
        "",
        "| strategy | mean relative rank | data sets |",
        "|---|---|---|",
        *[f"| {k} | {np.mean(ranks[k]):.2f} | {len(ranks[k])} |" for k in order],
    ]
    return "\n".join(lines)


def write_page(
    experiments: Sequence[str],
    page: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tracking_uri: str | None = None,
    *,
    title: str = "Strategy comparison",
    preamble: str = "",
    log: bool = True,
    metric: str | None = None,
) -> list[Report]:
    """Report each experiment into ``out/<experiment>/`` and collect them in one markdown page.

    The page has an overview (best strategy per data set, mean ranks) and one section per
    experiment with its table and figure, linked relative to the page.
    """
    page = Path(page)
    reports = [report(e, tracking_uri, Path(out) / e, log=log, metric=metric) for e in experiments]
    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble.strip(), ""]
    parts += ["## Overview", "", overview(reports), ""]
    for rep in reports:
        figure = Path(os.path.relpath(Path(out) / rep.experiment / f"{FIGURE}.png", page.parent))
        parts.append(section(rep, figure.as_posix(), heading="##"))
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(parts))
    return reports
