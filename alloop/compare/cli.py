"""``alloop compare`` and ``alloop report``: the command functions, registered by alloop.cli.

Also runnable alone: ``python -m alloop.compare.cli compare CONFIG``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

_console = Console(stderr=True)

TrackingOption = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"),
]


def _fail(message: str) -> None:
    # escaped: the example in a message (``strategies: [random, entropy]``) is not rich markup
    from rich.markup import escape

    _console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


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


def compare_command(
    config: Annotated[Path, typer.Argument(help="YAML compare config (an experiment config plus a compare section)")],
    jobs: Annotated[int, typer.Option(help="runs at once, each in its own process (or Ray task)")] = 1,
    force: Annotated[bool, typer.Option("--force", help="rerun (strategy, seed) pairs that already finished")] = False,
    tracking_uri: TrackingOption = None,
    backend: Annotated[
        str, typer.Option(help="where pairs run: 'process' (local processes) or 'ray' (Ray tasks)")
    ] = "process",
    address: Annotated[
        str | None, typer.Option(help="--backend ray: the cluster address (default: a local one)")
    ] = None,
) -> None:
    """Run every strategy × seed of a compare config, skipping pairs that already finished."""
    from alloop.compare.config import load_compare_config
    from alloop.compare.runner import CompareError, compare
    from alloop.config import ConfigError

    try:
        cfg = load_compare_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        table = compare(cfg, jobs=jobs, force=force, tracking_uri=tracking_uri, backend=backend,
                        address=address)
    except (CompareError, ValueError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
    metric = table.attrs["metric"]
    _print_table(table, metric, f"{cfg.experiment}: {metric}, mean over {len(cfg.seeds)} seeds")
    _console.print(f"figures and tests: alloop report {cfg.experiment}"
                   + (f" --tracking-uri {tracking_uri}" if tracking_uri else ""),
                   highlight=False, soft_wrap=True)


def report_command(
    experiments: Annotated[list[str], typer.Argument(help="MLflow experiment(s) of alloop compare")],
    out: Annotated[Path | None, typer.Option(help="folder for the files (default: reports/<experiment>; with --page: results/ beside the page)")] = None,
    tracking_uri: TrackingOption = None,
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

    try:
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
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
    for rep in reports:
        _print_table(rep.table, rep.metric, f"{rep.experiment}: {rep.metric}")
        logged = f" (summary run {rep.summary_run_id})" if rep.summary_run_id else ""
        _console.print(f"wrote {rep.files[0].parent}/{logged}", highlight=False)
    if page is not None:
        _console.print(f"wrote {page}", highlight=False)


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Compare query strategies.")
app.command("compare")(compare_command)
app.command("report")(report_command)

if __name__ == "__main__":  # pragma: no cover
    app()
