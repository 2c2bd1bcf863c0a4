"""``alloop annotate``: annotator tokens for the web annotation page (``oracle.kind: web``).

The page itself is served by ``alloop run CONFIG`` while the loop runs; these commands manage
who may sign in to it. A token is printed once, when it is made, and stored only as a hash.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alloop.cli.errors import console, fail, reported

annotate_app = typer.Typer(
    no_args_is_help=True,
    help="Annotator tokens for the web annotation page (oracle.kind: web).",
)


def _config(path: Path):  # -> ExperimentConfig
    from alloop.config import load_config, read_yaml

    raw = read_yaml(path)  # the kind first: a config for another oracle gets this, not its fields
    oracle = raw.get("oracle") if isinstance(raw, dict) else None
    kind = oracle.get("kind", "simulated") if isinstance(oracle, dict) else "simulated"
    if kind != "web":
        fail(f"{path} has oracle.kind {kind!r}; tokens are for oracle.kind 'web'")
    return load_config(path)


def _annotators(cfg) -> list[str]:
    return list(cfg.oracle.annotators)  # the config checked oracle.kind: web


def _store(cfg):
    from oracles.web import TokenStore

    return TokenStore(cfg.tokens_path())


ConfigArg = Annotated[Path, typer.Argument(help="the run's YAML config (oracle.kind: web)")]
AnnotatorOpt = Annotated[str, typer.Option("--annotator", "-a", help="the annotator's id")]


@annotate_app.command("token")
@reported
def token(config: ConfigArg, annotator: AnnotatorOpt) -> None:
    """Make a token for an annotator (replacing their old one) and print it, once."""
    cfg = _config(config)
    known = _annotators(cfg)
    if annotator not in known:
        fail(f"annotator {annotator!r} is not in oracle.annotators of {config} "
              f"({', '.join(known)}); add the id there first")
    store = _store(cfg)
    replaced = any(t.annotator == annotator and t.active for t in store.list())
    secret = store.create(annotator)
    o = cfg.oracle
    port = o.port or "PORT"
    typer.echo(secret)
    console.print(
        f"token for [bold]{annotator}[/] (shown only now; stored hashed in {store.path})"
        + (" — it replaces their previous token" if replaced else "")
        + f"\nsign-in link while `alloop run {config}` runs: "
          f"http://{o.host}:{port}/login#token={secret}",
        highlight=False, soft_wrap=True,
    )


@annotate_app.command("tokens")
@reported
def tokens(config: ConfigArg) -> None:
    """List the annotators of a run and the state of their tokens (never the tokens)."""
    cfg = _config(config)
    entries = {t.annotator: t for t in _store(cfg).list()}
    table = Table(title=f"annotators of {cfg.name}")
    for column in ("annotator", "token", "created", "revoked"):
        table.add_column(column)

    def when(stamp: float | None) -> str:
        return "" if stamp is None else dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

    names = _annotators(cfg)
    for name in names + sorted(set(entries) - set(names)):
        t = entries.get(name)
        state = "none" if t is None else ("active" if t.active else "revoked")
        if name not in names:
            state += " (not in the config)"
        table.add_row(name, state, when(t and t.created_at), when(t and t.revoked_at))
    Console().print(table)


@annotate_app.command("revoke")
@reported
def revoke(config: ConfigArg, annotator: AnnotatorOpt) -> None:
    """Revoke an annotator's token; a running page refuses it from the next request on."""
    cfg = _config(config)
    if _store(cfg).revoke(annotator):
        console.print(f"revoked the token of {annotator}", highlight=False)
    else:
        fail(f"annotator {annotator!r} has no active token in {cfg.tokens_path()}")
