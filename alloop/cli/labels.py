"""``alloop labels export|verify`` and ``alloop store init-roles``: reading and checking a label
store, and giving PostgreSQL loops a role that can only read and add history."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alloop.cli.errors import EXIT_FOUND, fail, reported
from alloop.cli.options import LabelRule, OldRule

labels_app = typer.Typer(no_args_is_help=True, help="Work with a run's label store.")
store_app = typer.Typer(no_args_is_help=True, help="Set up a label store's database.")


@labels_app.command("export")
@reported
def labels_export(
    source: Annotated[
        str, typer.Argument(help="a label store (.sqlite file or database URL) or the run's YAML config")
    ],
    out: Annotated[Path, typer.Option(help="output file: .csv or .parquet")] = Path("labels.csv"),
    seed: Annotated[int | None, typer.Option(help="with a config: the run's seed")] = None,
    label_rule: LabelRule = None,
    rule: OldRule = None,
) -> None:
    """Write every answer (history, annotators, skips) and the derived labels to CSV or Parquet."""
    import pandas as pd

    from alloop.store import open_store, store_exists

    if source.endswith((".yaml", ".yml")):
        from alloop.config import load_config

        cfg = load_config(source, seed=seed)
        source, label_rule = cfg.store.url or str(cfg.store_path()), label_rule or cfg.oracle.label_rule
    if not store_exists(source):
        fail(f"label store {source!r} does not exist")
    if out.suffix not in (".csv", ".parquet"):
        fail(f"--out must end in .csv or .parquet; got {out.name!r}")
    if (label_rule or "latest") not in ("latest", "majority", "dawid-skene"):
        fail(f"--label-rule must be latest, majority or dawid-skene; got {label_rule!r}")
    store = open_store(source)
    answers = store.answers()
    current = store.current_labels(rule=label_rule or "latest")
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


@labels_app.command("verify")
@reported
def verify_command(
    store: Annotated[str, typer.Argument(help="a label store: .sqlite file or database URL")],
) -> None:
    """Recompute the answers' hash chain; name the first answer that does not match (exit 1)."""
    from alloop.store import open_store, store_exists

    if not store_exists(store):
        fail(f"label store {store!r} does not exist")
    with open_store(store) as opened:
        broken = opened.verify()
        n = len(opened)
    if broken is not None:
        seq, reason = broken
        fail(f"label store {opened.path}: answer seq {seq} does not match the hash chain ({reason}); "
             f"the {seq - 1 if seq > 1 else 0} answers before it do", code=EXIT_FOUND)
    Console().print(f"label store {opened.path}: all {n} answers match their hash chain")


@store_app.command("init-roles")
@reported
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

    target = parse_target(url)
    if target.backend != "postgresql":
        fail("init-roles is for PostgreSQL stores; a SQLite store is guarded by file "
             "permissions (see docs/label-store.md)")
    statements = grant_statements(writer, target.schema or "public")
    open_store(url).close()  # create or migrate it, as the owner
    engine = create_engine(target)
    try:
        with engine.begin() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": writer}).first()
            if not exists:
                password = os.environ.get(password_env) if password_env else None
                if password_env and not password:
                    fail(f"--password-env {password_env}: that environment variable is empty")
                conn.exec_driver_sql(f'CREATE ROLE "{writer}" LOGIN'
                                     + (" PASSWORD %(p)s" if password else ""),
                                     {"p": password} if password else None)
            owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'answers' "
                                      "AND schemaname = :s"), {"s": target.schema or "public"}).scalar()
            if owner == writer:
                fail(f"role {writer!r} owns the store's tables, so it could disable their "
                      "triggers; create the store as another role (the URL's) and grant this one")
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    shown = target.url.set(username=writer, password=None).render_as_string(hide_password=True)
    Console().print(f"role {writer} may now SELECT and INSERT the store's history (and keep its "
                    f"meta); point the loops at {shown}" + (f"?schema={target.schema}" if target.schema else ""))
