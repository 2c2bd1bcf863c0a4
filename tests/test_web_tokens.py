"""Annotator tokens: stored hashed, checked in constant time, replaced and revoked; the CLI."""

import hashlib
import hmac
import stat

import pytest
import yaml
from typer.testing import CliRunner

from alloop.cli.annotate import annotate_app
from oracles.web import TokenStore


def test_tokens_are_random_shown_once_and_stored_only_as_hashes(tmp_path):
    store = TokenStore(tmp_path / "t" / "tokens.sqlite")
    ann, bob = store.create("ann"), store.create("bob")
    assert ann != bob and len(ann) == 43 and set(ann) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = store.path.read_bytes() + b"".join(
        p.read_bytes() for p in store.path.parent.glob("tokens.sqlite-*"))
    for token in (ann, bob):
        assert token.encode() not in raw
        assert hashlib.sha256(token.encode()).hexdigest().encode() in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.verify(ann) == "ann" and store.verify(bob) == "bob"
    assert store.verify(ann[:-1] + ("A" if ann[-1] != "A" else "B")) is None
    assert store.verify("") is None and store.verify(None) is None and store.verify("x" * 10_000) is None
    assert [(t.annotator, t.active) for t in store.list()] == [("ann", True), ("bob", True)]


def test_a_new_token_replaces_the_old_and_revoke_takes_effect_at_once(tmp_path):
    store = TokenStore(tmp_path / "tokens.sqlite")
    old = store.create("ann")
    new = store.create("ann")
    assert store.verify(old) is None and store.verify(new) == "ann"
    other = TokenStore(tmp_path / "tokens.sqlite")  # e.g. the CLI, while a page runs
    assert other.revoke("ann") is True and other.revoke("ann") is False
    assert store.verify(new) is None
    assert [(t.annotator, t.active) for t in store.list()] == [("ann", False)]
    again = store.create("ann")
    assert store.verify(again) == "ann"


def test_every_stored_hash_is_compared_in_constant_time(tmp_path, monkeypatch):
    store = TokenStore(tmp_path / "tokens.sqlite")
    tokens = [store.create(name) for name in ("a", "b", "c")]
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda x, y: calls.append(1) or real(x, y))
    assert store.verify(tokens[0]) == "a"
    assert len(calls) == 3  # no early exit on the first match


def test_bad_annotator_ids_are_named(tmp_path):
    with pytest.raises(ValueError, match="annotator id 'two words' is not valid"):
        TokenStore(tmp_path / "tokens.sqlite").create("two words")


def write_config(tmp_path, oracle):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({
        "name": "team", "data": {"source": "sklearn:iris"},
        "oracle": {"tokens": str(tmp_path / "tokens.sqlite"), **oracle},
    }))
    return path


def test_cli_makes_lists_and_revokes_tokens(tmp_path):
    config = write_config(tmp_path, {"kind": "web", "annotators": ["ann", "bob"], "port": 9000})
    runner = CliRunner()
    made = runner.invoke(annotate_app, ["token", str(config), "--annotator", "ann"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[0]
    assert TokenStore(tmp_path / "tokens.sqlite").verify(token) == "ann"
    assert f"http://127.0.0.1:9000/login#token={token}" in made.stderr.replace("\n", "")
    listed = runner.invoke(annotate_app, ["tokens", str(config)])
    assert listed.exit_code == 0 and token not in listed.output
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "│ ann" in line
            or "│ bob" in line}
    assert "active" in rows["ann"] and "none" in rows["bob"]
    revoked = runner.invoke(annotate_app, ["revoke", str(config), "--annotator", "ann"])
    assert revoked.exit_code == 0
    assert TokenStore(tmp_path / "tokens.sqlite").verify(token) is None
    again = runner.invoke(annotate_app, ["revoke", str(config), "--annotator", "ann"])
    assert again.exit_code == 2 and "no active token" in again.stderr
    stranger = runner.invoke(annotate_app, ["token", str(config), "--annotator", "eve"])
    assert stranger.exit_code == 2 and "'eve' is not in oracle.annotators" in stranger.stderr


def test_cli_refuses_a_config_without_a_web_oracle(tmp_path):
    config = write_config(tmp_path, {"kind": "simulated"})
    result = CliRunner().invoke(annotate_app, ["tokens", str(config)])
    assert result.exit_code == 2 and "tokens are for oracle.kind 'web'" in result.stderr
