"""The ``alloop`` command line: one Typer app, one error handler (:mod:`alloop.cli.errors`),
one spelling per option (:mod:`alloop.cli.options`), a module per concept.

Importing this package loads typer and rich only: each command imports what it needs when it
runs, so ``alloop --help`` and ``alloop strategies`` stay fast (tests/test_startup.py).
"""

from __future__ import annotations

import typer

from alloop.cli.annotate import annotate_app
from alloop.cli.compare import compare_command, report_command
from alloop.cli.labels import labels_app, store_app
from alloop.cli.run import run
from alloop.cli.select import select_cli
from alloop.cli.serve import server_command, ui
from alloop.cli.strategies import list_strategies

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Active-learning loops with regularity-tangent and influence-based queries.",
)

_display_type = typer.core.TyperOption.display_type_rich


def _no_bool_marker(self: typer.core.TyperOption, ctx: object) -> str | None:
    """Typer 0.29 prints ``<bool>`` after every flag (``--resume <bool>``), which reads as if
    the flag took a value; flags show no type in alloop's help."""
    return None if self.is_flag else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _no_bool_marker

app.command("run")(run)
app.command("compare", help="Run strategies × seeds in parallel processes (or Ray tasks with --ray), tracked in MLflow.")(compare_command)
app.command("report", help="Learning curves, summary table and paired tests of a compare run.")(report_command)
app.command("select", help="Influence-based data selection (IP-adding) for labeled candidates.")(select_cli)
app.command("strategies")(list_strategies)
app.add_typer(labels_app, name="labels")
app.add_typer(store_app, name="store")
app.add_typer(annotate_app, name="annotate")
app.command("server", help="Serve MLflow tracking on PostgreSQL for `alloop run --tracking-uri`.")(server_command)
app.command("ui")(ui)


def main() -> None:  # pragma: no cover - console entry point
    """The ``alloop`` console script."""
    app()


__all__ = ["app", "main"]
