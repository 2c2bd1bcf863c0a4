"""``alloop run CONFIG``: the loop a config describes, its table and learning curve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alloop.cli.errors import console, fail, reported
from alloop.cli.options import Ray, Seed, TrackingUri, ray_address

#: sections that belong to another command, which the message names.
OTHER_COMMANDS = (("compare", "alloop compare"), ("selection", "alloop select"))


@reported
def run(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    tracking_uri: TrackingUri = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue after the last completed round")] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="start over: set the old label store aside (renamed with a timestamp, never deleted)")
    ] = False,
    seed: Seed = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    threads: Annotated[
        int | None, typer.Option(help="torch/BLAS threads (default: the idle cores, cores − load average, at least 1)")
    ] = None,
    ray: Ray = None,
) -> None:
    """Run the active-learning loop a config describes, one MLflow nested run per round."""
    from alloop.threads import set_threads

    set_threads(threads)  # default: the idle cores (README, "Threads")
    from alloop.config import load_config, read_yaml
    from alloop.config.scoring import RayScoring
    from alloop.experiment import run_experiment

    raw = read_yaml(config)
    for section, command in OTHER_COMMANDS:
        if isinstance(raw, dict) and section in raw:
            fail(f"{config} has a {section}: section, which is for {command}: run "
                 f"{command} {config} (or remove {section}: to run one loop)")
    cfg = load_config(config, seed=seed)
    if fresh and resume:
        fail("--fresh starts over and --resume continues: give one of them")
    if fresh:
        from alloop.store.archive import archive_store

        archived = archive_store(cfg.store.url or cfg.store_path())
        if archived:
            console.print(f"set the old label store aside as {archived}", highlight=False, soft_wrap=True)
    if ray is not None:
        cfg = cfg.model_copy(update={"scoring": RayScoring(address=ray_address(ray))})
    result = run_experiment(cfg, resume=resume, tracking_uri=tracking_uri, progress=progress)
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
