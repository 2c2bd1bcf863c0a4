"""``alloop labels verify`` and ``alloop store init-roles``: checking a label store, and giving
PostgreSQL loops a role that can only read and add history."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

store_app = typer.Typer(no_args_is_help=True, help="Set up a label store's database.")
console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=code)


def verify_command(
    store: Annotated[str, typer.Argument(help="a label store: .sqlite file or database URL")],
) -> None:
    """Recompute the answers' hash chain; name the first answer that does not match (exit 1)."""
    from alloop.store import open_store, store_exists

    if not store_exists(store):
        _fail(f"label store {store!r} does not exist")
    with open_store(store) as opened:
        broken = opened.verify()
        n = len(opened)
    if broken is not None:
        seq, reason = broken
        _fail(f"label store {opened.path}: answer seq {seq} does not match the hash chain ({reason}); "
              f"the {seq - 1 if seq > 1 else 0} answers before it do", code=1)
    Console().print(f"label store {opened.path}: all {n} answers match their hash chain")


@store_app.command("init-roles")
def init_roles(
    url: Annotated[str, typer.Argument(help="the store's PostgreSQL URL, connecting as the owner")],
    writer: Annotated[str, typer.Option(help="the role alloop's loops will connect as")] = "alloop_writer",
    password_env: Annotated[
        str | None, typer.Option(help="create the writer role with the password in this variable")
    ] = None,
) -> None:
    """Create (or migrate) the store as its owner, and grant WRITER only SELECT and INSERT."""
    from sqlalchemy import text

    from alloop.store import open_store
    from alloop.store.connect import create_engine, parse_target
    from alloop.store.roles import grant_statements

    try:
        target = parse_target(url)
        if target.backend != "postgresql":
            _fail("init-roles is for PostgreSQL stores; a SQLite store is guarded by file "
                  "permissions (see docs/label-store.md)")
        statements = grant_statements(writer, target.schema or "public")
    except ValueError as exc:
        _fail(str(exc))
    open_store(url).close()  # create or migrate it, as the owner
    engine = create_engine(target)
    try:
        with engine.begin() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": writer}).first()
            if not exists:
                password = os.environ.get(password_env) if password_env else None
                if password_env and not password:
                    _fail(f"--password-env {password_env}: that environment variable is empty")
                conn.exec_driver_sql(f'CREATE ROLE "{writer}" LOGIN'
                                     + (" PASSWORD %(p)s" if password else ""),
                                     {"p": password} if password else None)
            owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'answers' "
                                      "AND schemaname = :s"), {"s": target.schema or "public"}).scalar()
            if owner == writer:
                _fail(f"role {writer!r} owns the store's tables, so it could disable their "
                      "triggers; create the store as another role (the URL's) and grant this one")
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    shown = target.url.set(username=writer, password=None).render_as_string(hide_password=True)
    Console().print(f"role {writer} may now SELECT and INSERT the store's history (and keep its "
                    f"meta); point the loops at {shown}" + (f"?schema={target.schema}" if target.schema else ""))
