"""``alloop select CONFIG``: influence-based data selection (IP-adding), one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alloop.cli.errors import reported
from alloop.cli.options import Seed, TrackingUri


@reported
def select_cli(
    config: Annotated[Path, typer.Argument(help="YAML config with a selection: section")],
    tracking_uri: TrackingUri = None,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: .alloop/<name>/selection)")
    ] = None,
    seed: Seed = None,
) -> None:
    """Select training data by influence (IP-adding): fit on a base set, score labeled
    candidates against a validation set, retrain on base ∪ selected; one MLflow run."""
    from rich.console import Console
    from rich.table import Table

    from alloop.selection import select_command

    run = select_command(config, tracking_uri=tracking_uri, out=out, seed=seed)
    r, c = run.result, run.counts
    table = Table(title=f"IP-adding selection: {c['n_selected']} of {c['n_candidates']} candidates")
    names = list(r.metrics or r.base_metrics)
    table.add_column("model")
    table.add_column("train size", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    rows = [("base only", c["n_base"], r.base_metrics)]
    if r.full_metrics is not None:
        rows.append(("base + all candidates", c["n_base"] + c["n_candidates"], r.full_metrics))
    rows.append(("base + selected", c["n_base"] + c["n_selected"], r.metrics))
    for label, size, metrics in rows:
        table.add_row(label, str(size), *[f"{metrics[n]:.4f}" for n in names if n in metrics])
    Console().print(table)
    Console().print(f"wrote {run.out}/selected.csv and metrics.json")
    if run.run_id:
        Console().print(f"MLflow run: {run.run_id}  (browse with: alloop ui)")
