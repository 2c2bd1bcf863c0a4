"""``alloop compare`` (strategies × seeds) and ``alloop report`` (figures and tests from MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alloop.cli.errors import console as _console
from alloop.cli.errors import reported
from alloop.cli.options import OldAddress, OldBackend, Ray, TrackingUri, ray_address


def _print_table(table, metric: str, title: str) -> None:
    """The summary table, compact enough for an 80-column terminal."""
    import math

    def number(value: float, digits: int = 4) -> str:
        return "-" if not math.isfinite(value) else f"{value:.{digits}f}"

    shown = Table(title=title)
    for header in ("strategy", "final", "nAUC", "to 95%", "to 99%", "query s", "p rand", "p best"):
        shown.add_column(header, justify="left" if header == "strategy" else "right")
    for _, row in table.iterrows():
        shown.add_row(
            row["strategy"], number(row[f"final_{metric}"]), number(row[f"nauc_{metric}"]),
            number(row["labels_95"], 0), number(row["labels_99"], 0),
            number(row["query_seconds"], 3), number(row["p_vs_random"], 3),
            number(row["p_vs_best"], 3),
        )
    Console().print(shown)


@reported
def compare_command(
    config: Annotated[Path, typer.Argument(help="YAML compare config (an experiment config plus a compare section)")],
    jobs: Annotated[int, typer.Option(help="runs at once, each in its own process (or Ray task)")] = 1,
    force: Annotated[bool, typer.Option("--force", help="rerun (strategy, seed) pairs that already finished")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="run only this strategy of the config (repeatable); with --force, rerun it"),
    ] = None,
    tracking_uri: TrackingUri = None,
    ray: Ray = None,
    backend: OldBackend = None,
    address: OldAddress = None,
) -> None:
    """Run every strategy × seed of a compare config, skipping pairs that already finished
    (with --ray, as Ray tasks instead of local processes)."""
    from alloop.compare.runner import compare
    from alloop.config.compare import load_compare_config

    cfg = load_compare_config(config)
    table = compare(cfg, jobs=jobs, force=force, only=only, tracking_uri=tracking_uri,
                    backend="process" if ray is None else "ray",
                    address=None if ray is None else ray_address(ray))
    metric = table.attrs["metric"]
    _print_table(table, metric, f"{cfg.experiment}: {metric}, mean over {len(cfg.seeds)} seeds")
    _console.print(f"figures and tests: alloop report {cfg.experiment}"
                   + (f" --tracking-uri {tracking_uri}" if tracking_uri else ""),
                   highlight=False, soft_wrap=True)


@reported
def report_command(
    experiments: Annotated[list[str], typer.Argument(help="MLflow experiment(s) of alloop compare")],
    out: Annotated[Path | None, typer.Option(help="folder for the files (default: reports/<experiment>; with --page: results/ beside the page)")] = None,
    tracking_uri: TrackingUri = None,
    page: Annotated[
        Path | None, typer.Option(help="also write one markdown page over every experiment (e.g. experiments/RESULTS.md)")
    ] = None,
    preamble: Annotated[
        Path | None, typer.Option(help="markdown file placed at the top of --page")
    ] = None,
    log: Annotated[bool, typer.Option(help="log the files as artifacts of a summary run")] = True,
    metric: Annotated[
        str | None, typer.Option(help="headline metric, e.g. roc_auc (default: accuracy, or rmse)")
    ] = None,
) -> None:
    """Learning curves, a summary table and paired tests of a comparison, read from MLflow."""
    from alloop.compare.report import report, write_page

    if page is not None:
        folder = out or page.parent / "results"
        text = preamble.read_text() if preamble is not None else ""
        reports = write_page(experiments, page, folder, tracking_uri, preamble=text, log=log,
                             metric=metric)
    else:
        reports = [
            report(e, tracking_uri, (out / e if len(experiments) > 1 else out) if out else None,
                   log=log, metric=metric)
            for e in experiments
        ]
    for rep in reports:
        _print_table(rep.table, rep.metric, f"{rep.experiment}: {rep.metric}")
        logged = f" (summary run {rep.summary_run_id})" if rep.summary_run_id else ""
        _console.print(f"wrote {rep.files[0].parent}/{logged}", highlight=False)
    if page is not None:
        _console.print(f"wrote {page}", highlight=False)
