"""``alloop strategies``: the registered query strategies (loads no torch, MLflow or Ray)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from alloop.cli.errors import reported


@reported
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
