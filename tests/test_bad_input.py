"""Bad input: each error names the bad value and the fix, `alloop run` prints no traceback, and
nothing already stored is changed."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import strategies
from alloop.config import ConfigError, load_config, parse_config
from alloop.data.loaders import load_dataset
from alloop.models import LogisticGLM
from alloop.store import LabelStore
from alloop.store.migrations import SchemaVersionError


def write(tmp_path: Path, **sections) -> Path:
    config = {"name": "bad", "data": {"source": "sklearn:iris"},
              "loop": {"initial": 10, "batch_size": 5, "rounds": 1},
              "store": {"path": str(tmp_path / "store.sqlite")}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def alloop_run(path: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "alloop", "run", str(path), "--no-progress",
         "--tracking-uri", f"sqlite:///{path.parent / 'mlflow.db'}", *extra],
        cwd=path.parent, capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def failed(proc: subprocess.CompletedProcess, *words: str) -> None:
    text = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 2, proc.stderr
    for word in words:
        assert word in text, (word, text)


def test_unknown_model_param_names_it_and_the_valid_ones(tmp_path):
    proc = alloop_run(write(tmp_path, model={"kind": "logistic", "params": {"foo": 1}}))
    failed(proc, "model.params {'foo': 1}", "foo", "valid params:", "fit_intercept")
    assert not (tmp_path / "store.sqlite").exists()


def test_non_utf8_config_and_csv_name_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: café\ndata: {source: 'sklearn:iris'}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml.*not UTF-8.*0xe9"):
        load_config(path)
    failed(alloop_run(path), "latin.yaml", "not UTF-8", "save it as UTF-8")
    csv = tmp_path / "latin.csv"
    csv.write_bytes("x,label\n1.0,caf\xe9\n2.0,th\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.csv.*not UTF-8"):
        load_dataset(str(csv), target="label")
    failed(alloop_run(write(tmp_path, data={"source": str(csv), "target": "label"})),
           "latin.csv", "not UTF-8", "save the CSV as UTF-8")


def test_empty_csv_says_what_a_csv_needs(tmp_path):
    csv = tmp_path / "empty.csv"
    csv.write_text("")
    with pytest.raises(ValueError, match="empty.csv.*is empty.*header row"):
        load_dataset(str(csv), target="label")
    failed(alloop_run(write(tmp_path, data={"source": str(csv), "target": "label"})),
           "empty.csv", "is empty")


def test_truncated_store_on_resume_is_refused_and_left_as_it_was(tmp_path):
    path = write(tmp_path)
    assert alloop_run(path).returncode == 0
    store = tmp_path / "store.sqlite"
    with store.open("r+b") as f:
        f.truncate(store.stat().st_size // 2)
    before = store.read_bytes()
    failed(alloop_run(path, "--resume"), "cannot be read", "truncated", "Nothing was changed",
           "another store path")
    assert store.read_bytes() == before


def test_schema_version_that_is_not_a_number(tmp_path):
    target = tmp_path / "store.sqlite"
    LabelStore(target).close()
    with sqlite3.connect(target) as conn:
        conn.execute("UPDATE meta SET value = '\"two\"' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="schema_version is 'two', not an integer"):
        LabelStore(target)
    failed(alloop_run(write(tmp_path), "--resume"), "schema_version is 'two'", "backup")


@pytest.mark.parametrize(("change", "words"), [
    ({"seed": -1}, ["seed", "greater than or equal to 0", "-1"]),
    ({"loop": {"batch_size": True}}, ["loop.batch_size", "valid integer", "True"]),
    ({"loop": {"initial": 2.5}}, ["loop.initial", "2.5"]),
])
def test_bad_numbers_are_refused_at_load(tmp_path, change, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, **change))
    for word in words:
        assert word in str(info.value)
    failed(alloop_run(write(tmp_path, **change)), *words[:1])


def test_seed_override_on_the_command_line_is_checked_too(tmp_path):
    failed(alloop_run(write(tmp_path), "--seed", "-1"), "seed", "greater than or equal to 0")


def test_string_column_advice_is_what_the_config_accepts(tmp_path):
    frame = pd.DataFrame({"x": np.arange(40.0), "colour": ["red", "blue"] * 20,
                          "label": [0, 1] * 20})
    csv = tmp_path / "mixed.csv"
    frame.to_csv(csv, index=False)
    proc = alloop_run(write(tmp_path, data={"source": str(csv), "target": "label"}))
    failed(proc, "['colour']", "data.categorical: one_hot", "data.features")
    # the advice works as given
    for fix in ({"categorical": "one_hot"}, {"features": ["x"]}):
        cfg = parse_config(yaml.safe_load(write(tmp_path, data={"source": str(csv),
                                                                "target": "label", **fix}).read_text()))
        from alloop.experiment import prepare_data

        data = prepare_data(cfg)
        assert data.pool.X.shape[1] == (3 if "categorical" in fix else 1)


def test_a_strategy_called_the_modal_way_with_a_model_says_which_call_to_use():
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticGLM().fit(X, y)
    with pytest.raises(TypeError) as info:
        strategies.get("entropy")(model, X)
    message = str(info.value)
    assert "LogisticGLM" in message and "not a modAL learner" in message
    assert "strategies.get('entropy').score(model, X_pool" in message and "ActiveLearner(" in message
