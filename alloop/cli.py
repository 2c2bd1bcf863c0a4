"""The ``alloop`` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Active-learning loops with regularity-tangent and influence-based queries.",
)
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue after the last completed round")] = False,
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    threads: Annotated[
        int | None, typer.Option(help="torch/BLAS threads (default: the idle cores, cores − load average, at least 1)")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option("--ray", help="score the pool on Ray: a cluster address, or 'local' for a local one"),
    ] = None,
) -> None:
    """Run the active-learning loop a config describes, one MLflow nested run per round."""
    from alloop.threads import set_threads

    set_threads(threads)  # default: the idle cores (README, "Threads")
    from alloop.config import ConfigError, load_config
    from alloop.experiment import run_experiment
    from alloop.loop import StoreNotEmptyError

    try:
        cfg = load_config(config, seed=seed)
    except ConfigError as exc:
        _fail(str(exc))
    if ray is not None:
        cfg.scoring.backend = "ray"
        cfg.scoring.address = None if ray == "local" else ray
    try:
        result = run_experiment(cfg, resume=resume, tracking_uri=tracking_uri, progress=progress)
    except (StoreNotEmptyError, ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc).strip("'\""))
    table = Table(title=f"{cfg.name}: {cfg.strategy.name}, seed {cfg.seed} (stopped: {result.stop_reason})")
    metric_cols = [c for c in ("accuracy", "macro_f1", "log_loss", "rmse", "mae", "r2") if c in result.curve]
    for col in ["round", "labels", *metric_cols]:
        table.add_column(col, justify="right")
    for _, row in result.curve.iterrows():
        table.add_row(str(int(row["round"])), str(int(row["labels"])), *[f"{row[c]:.4f}" for c in metric_cols])
    Console().print(table)
    if result.run_id:
        Console().print(f"MLflow parent run: {result.run_id}  (browse with: alloop ui)")


labels_app = typer.Typer(no_args_is_help=True, help="Work with a run's label store.")
app.add_typer(labels_app, name="labels")

from alloop.annotate_cli import annotate_app  # noqa: E402  (loads no web stack)

app.add_typer(annotate_app, name="annotate")

from alloop.server_cli import server_command  # noqa: E402  (light: typer, rich)

app.command("server", help="Serve MLflow tracking on PostgreSQL for `alloop run --tracking-uri`.")(
    server_command
)


@labels_app.command("export")
def labels_export(
    source: Annotated[
        str, typer.Argument(help="a label store (.sqlite file or database URL) or the run's YAML config")
    ],
    out: Annotated[Path, typer.Option(help="output file: .csv or .parquet")] = Path("labels.csv"),
    seed: Annotated[int | None, typer.Option(help="with a config: the run's seed")] = None,
    rule: Annotated[
        str | None, typer.Option(help="latest | majority | dawid-skene (default: the config's, else latest)")
    ] = None,
) -> None:
    """Write every answer (history, annotators, skips) and the derived labels to CSV or Parquet."""
    import pandas as pd

    from alloop.store import open_store, store_exists

    if source.endswith((".yaml", ".yml")):
        from alloop.config import ConfigError, load_config

        try:
            cfg = load_config(source, seed=seed)
        except ConfigError as exc:
            _fail(str(exc))
        source, rule = cfg.store.url or str(cfg.store_path()), rule or cfg.oracle.aggregate
    if not store_exists(source):
        _fail(f"label store {source!r} does not exist")
    if out.suffix not in (".csv", ".parquet"):
        _fail(f"--out must end in .csv or .parquet; got {out.name!r}")
    if (rule or "latest") not in ("latest", "majority", "dawid-skene"):
        _fail(f"--rule must be latest, majority or dawid-skene; got {rule!r}")
    store = open_store(source)
    answers = store.answers()
    current = store.current_labels(rule=rule or "latest")
    store.close()

    def text(value: object) -> object:  # labels as written (no 2 → 2.0 through a float column)
        return None if value is None else str(value)

    frame = pd.DataFrame({
        "seq": [a.seq for a in answers],
        "item_id": [a.item_id for a in answers],
        "label": pd.array([text(a.label) for a in answers], dtype="string"),
        "kind": [a.kind for a in answers],
        "annotator": [a.annotator for a in answers],
        "round": [a.round for a in answers],
        "cost": [a.cost for a in answers],
        "created_at": pd.to_datetime([a.created_at for a in answers], unit="s", utc=True),
        "current_label": pd.array([text(current.get(a.item_id)) for a in answers], dtype="string"),
    })
    frame.to_parquet(out, index=False) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    Console().print(f"wrote {len(frame)} answers for {frame['item_id'].nunique()} items to {out}")


from alloop.compare.cli import compare_command, report_command  # noqa: E402
from alloop.selection import select_cli  # noqa: E402  (light: numpy, pydantic, typer)

app.command("compare", help="Run strategies × seeds in parallel processes, tracked in MLflow.")(compare_command)
app.command("report", help="Learning curves, summary table and paired tests of a compare run.")(report_command)

app.command("select", help="Influence-based data selection (IP-adding) for labeled candidates.")(select_cli)


@app.command("strategies")
def list_strategies() -> None:
    """List the registered query strategies."""
    import strategies

    table = Table(title="query strategies")
    table.add_column("name")
    table.add_column("needs")
    table.add_column("description")
    for name, description in strategies.available().items():
        table.add_row(name, ", ".join(strategies.get(name).needs) or "-", description)
    Console().print(table)


@app.command()
def ui(
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow store to browse")] = None,
    port: Annotated[int, typer.Option(help="port to serve on")] = 5000,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the local store (sqlite:///mlflow.db by default)."""
    from alloop.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    console.print(f"serving {uri} at http://{host}:{port}")
    raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
