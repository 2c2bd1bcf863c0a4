"""Options several commands take, spelt once (README 'Vocabulary')."""

from __future__ import annotations

from typing import Annotated

import typer

from alloop.cli.errors import renamed_option

TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"),
]
Seed = Annotated[int | None, typer.Option(help="override the config's seed")]
Ray = Annotated[
    str | None,
    typer.Option("--ray", metavar="ADDR", help="use Ray: a cluster address, or 'local' for a local one"),
]
LabelRule = Annotated[
    str | None,
    typer.Option(help="latest | majority | dawid-skene (default: the config's oracle.label_rule, else latest)"),
]
OldRule = Annotated[
    str | None,
    typer.Option("--rule", hidden=True, callback=renamed_option("--rule", "--label-rule")),
]
OldBackend = Annotated[
    str | None,
    typer.Option("--backend", hidden=True,
                 callback=renamed_option("--backend", "--ray ADDR (or --ray local)")),
]
OldAddress = Annotated[
    str | None,
    typer.Option("--address", hidden=True, callback=renamed_option("--address", "--ray ADDR")),
]


def ray_address(ray: str) -> str | None:
    """The cluster address of ``--ray`` (None: start a local one)."""
    return None if ray == "local" else ray
