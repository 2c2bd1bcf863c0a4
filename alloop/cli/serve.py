"""``alloop server`` (MLflow tracking on PostgreSQL) and ``alloop ui`` (the MLflow UI), in the
foreground until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alloop.cli.errors import EXIT_FOUND, EXIT_INTERRUPTED, console, fail, reported


@reported
def server_command(
    backend_store_uri: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the store for runs and metrics, e.g. "
                          "postgresql://user@host:5432/mlflow (default with --postgres-dir: "
                          "that cluster's 'mlflow' database)"),
    ] = None,
    artifacts_destination: Annotated[
        str, typer.Option(help="folder (or s3://..., gs://...) that uploaded artifacts go to")
    ] = "mlartifacts",
    host: Annotated[str, typer.Option(help="address to bind (0.0.0.0: reachable from other machines)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 5000,
    postgres_dir: Annotated[
        Path | None,
        typer.Option(help="start a local PostgreSQL cluster in this folder first (created on "
                          "first use, kept between runs) and store runs in it"),
    ] = None,
    workers: Annotated[int, typer.Option(help="server worker processes")] = 1,
) -> None:
    """Serve MLflow tracking on PostgreSQL for `alloop run CONFIG --tracking-uri URL`."""
    from alloop.services.mlflow_server import (
        interrupt_on_signals,
        serve_until_signal,
        start_mlflow_server,
    )

    if backend_store_uri is None and postgres_dir is None:
        fail("give --backend-store-uri URL (e.g. postgresql://user@host:5432/mlflow) or "
             "--postgres-dir DIR for a local PostgreSQL")
    postgres = None
    server = None
    # Ctrl-C, SIGTERM and SIGHUP all end the start-up or the foreground wait below and stop
    # what was started (the server's whole process group, so its port is free again)
    interrupt_on_signals()
    try:
        if postgres_dir is not None:
            from alloop.services.postgres import start_postgres

            try:
                postgres = start_postgres(postgres_dir)
            except (RuntimeError, OSError) as exc:  # the message carries initdb's own
                fail(f"could not start PostgreSQL: {exc}", code=EXIT_FOUND)
            console.print(f"PostgreSQL in {postgres_dir} on {postgres.host}:{postgres.port}")
            if backend_store_uri is None:
                backend_store_uri = postgres.create_database("mlflow")
        console.print(f"starting mlflow server on {host}:{port} (store: {backend_store_uri}) ...")
        try:
            server = start_mlflow_server(backend_store_uri, artifacts_destination, host, port,
                                         workers=workers)
        except RuntimeError as exc:
            fail(str(exc), code=EXIT_FOUND)
        console.print(
            f"MLflow tracking server ready in {server.startup_seconds:.0f} s "
            f"(log: {server.log_path}).\n"
            f"  run loops against it:  alloop run CONFIG --tracking-uri {server.url}\n"
            f"  or:                    export MLFLOW_TRACKING_URI={server.url}\n"
            f"  browse:                {server.url}\n"
            "Ctrl-C stops it.",
            highlight=False,
        )
        if serve_until_signal(server) is None:
            raise KeyboardInterrupt  # Ctrl-C or a signal: say so below
        console.print(f"[bold red]mlflow server exited[/] (code {server.process.returncode}); "
                      f"see {server.log_path}", highlight=False)
        raise typer.Exit(code=EXIT_FOUND)
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        if server is not None:
            server.stop()
        if postgres is not None:
            postgres.stop()


@reported
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
    except KeyboardInterrupt:  # the server is stopped already
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(f"serving {uri} at {server.url} (ready in {server.startup_seconds:.0f} s; "
                  f"log: {server.log_path}). Ctrl-C stops it.", highlight=False, soft_wrap=True)
    code = serve_until_signal(server)
    raise typer.Exit(0 if code is None else code)
