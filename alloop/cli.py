"""The ``alloop`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Active-learning loops with regularity-tangent and influence-based queries.",
)
console = Console(stderr=True)

_display_type = typer.core.TyperOption.display_type_rich


def _no_bool_marker(self: typer.core.TyperOption, ctx: object) -> str | None:
    """Typer 0.29 prints ``<bool>`` after every flag (``--resume <bool>``), which reads as if
    the flag took a value; flags show no type in alloop's help."""
    return None if self.is_flag else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _no_bool_marker


def _fail(message: str) -> None:
    # escaped: a message quoting a config (``strategies: [random, entropy]``) is not markup;
    # soft_wrap: paths and commands in it stay whole for copying
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue after the last completed round")] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="start over: set the old label store aside (renamed with a timestamp, never deleted)")
    ] = False,
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
    from alloop.config import ConfigError, load_config, read_yaml
    from alloop.experiment import run_experiment
    from alloop.loop import StoreNotEmptyError

    try:
        raw = read_yaml(config)
        for section, command in (("compare", "alloop compare"), ("selection", "alloop select")):
            if isinstance(raw, dict) and section in raw:
                _fail(f"{config} has a {section}: section, which is for {command}: run "
                      f"{command} {config} (or remove {section}: to run one loop)")
        cfg = load_config(config, seed=seed)
    except ConfigError as exc:
        _fail(str(exc))
    if fresh and resume:
        _fail("--fresh starts over and --resume continues: give one of them")
    if fresh:
        from alloop.store.archive import archive_store

        try:
            archived = archive_store(cfg.store.url or cfg.store_path())
        except ValueError as exc:
            _fail(str(exc))
        if archived:
            console.print(f"set the old label store aside as {archived}", highlight=False, soft_wrap=True)
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
    metric = "accuracy" if "accuracy" in result.curve else "rmse"
    if len(result.curve) and metric in result.curve:  # the figure also logged to MLflow, here too
        from alloop.plots import plot_learning_curve

        png = Path("reports") / cfg.name / f"{cfg.strategy.name}-seed{cfg.seed}-learning-curve.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        plot_learning_curve(result.curve, metric, png, title=f"{cfg.name}: {cfg.strategy.name}, seed {cfg.seed}")
        Console().print(f"learning curve: {png}", highlight=False, soft_wrap=True)
    if result.run_id:
        from alloop.tracking import resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri or cfg.tracking.uri)
        Console().print(f"MLflow parent run: {result.run_id}  (browse with: alloop ui --tracking-uri {uri})",
                        highlight=False, soft_wrap=True)


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
    if out.suffix == ".csv":  # text a spreadsheet would run as a formula gets a ' (oracles.cells)
        from oracles.cells import guard_cell

        for col in ("item_id", "label", "annotator", "current_label"):
            frame[col] = frame[col].map(lambda v: v if pd.isna(v) else guard_cell(str(v)))
    frame.to_parquet(out, index=False) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    Console().print(f"wrote {len(frame)} answers for {frame['item_id'].nunique()} items to {out}")


from alloop.store_cli import store_app, verify_command  # noqa: E402  (light: typer, rich)

labels_app.command("verify")(verify_command)
app.add_typer(store_app, name="store")

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
    """Open the MLflow UI on the local store (sqlite:///mlflow.db by default); Ctrl-C or SIGTERM stops it."""
    from alloop.services.mlflow_server import (
        interrupt_on_signals,
        serve_until_signal,
        start_mlflow_ui,
    )
    from alloop.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    interrupt_on_signals()  # `kill PID` stops the server and its workers too
    console.print(f"starting the MLflow UI on {uri} ...", highlight=False, soft_wrap=True)
    try:
        server = start_mlflow_ui(uri, host, port)
    except (RuntimeError, KeyboardInterrupt) as exc:  # the server is stopped already
        if isinstance(exc, KeyboardInterrupt):
            raise typer.Exit(130) from None
        _fail(str(exc))
    console.print(f"serving {uri} at {server.url} (ready in {server.startup_seconds:.0f} s; "
                  f"log: {server.log_path}). Ctrl-C stops it.", highlight=False, soft_wrap=True)
    code = serve_until_signal(server)
    raise typer.Exit(0 if code is None else code)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
