"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_with(text: str) -> str:
    """The one README python block that contains ``text``."""
    found = [b for b in python_blocks() if text in b]
    assert len(found) == 1, f"{len(found)} README python blocks contain {text!r}"
    return found[0]


def test_python_quickstart_is_short_and_runs(capsys):
    blocks = python_blocks()
    quickstart = blocks[0]
    assert len(quickstart.strip().splitlines()) <= 15
    namespace: dict = {}
    exec(compile(quickstart, "README quickstart", "exec"), namespace)
    result = namespace["result"]
    assert result.curve["labels"].tolist() == list(range(20, 121, 10))
    assert result.curve["accuracy"].iloc[-1] > result.curve["accuracy"].iloc[0]
    assert "accuracy" in capsys.readouterr().out

    # The modAL example continues from the quickstart's variables.
    exec(compile(block_with("ActiveLearner"), "README modAL example", "exec"), namespace)
    assert len(namespace["index"]) == 5 and len(set(namespace["index"].tolist())) == 5


def test_readme_names_only_registered_strategies():
    import strategies

    # the built-in strategies (tests and doctests register their own as well)
    builtin = {n for n in strategies.available()
               if strategies.get(n).scorer.__module__.startswith("strategies.")}
    table = README.read_text().split("## Query strategies")[1].split("## Where things live")[0]
    named = set(re.findall(r"^\| `([a-z-]+)`", table, flags=re.M))
    named |= set(re.findall(r"`([a-z-]+)`", " ".join(re.findall(r"^\| (`[^|]*)\|", table, flags=re.M))))
    assert named <= builtin, named - builtin
    assert builtin <= named, builtin - named


def test_parquet_scoring_example_runs(tmp_path, monkeypatch, capsys):
    import numpy as np
    import pandas as pd

    from alloop.models import LogisticGLM

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    (tmp_path / "pool").mkdir()
    for part in range(3):  # a folder of Parquet files, as the example says
        rows = slice(200 * part, 200 * (part + 1))
        frame = pd.DataFrame(X[rows], columns=[f"x{j}" for j in range(4)])
        frame.insert(0, "id", [f"item-{i}" for i in range(600)][rows])
        frame.to_parquet(tmp_path / "pool" / f"part-{part}.parquet")
    model = LogisticGLM(s=0.0).fit(X[:40], (X[:40, 0] > 0).astype(int))
    monkeypatch.chdir(tmp_path)
    namespace = {"model": model}
    exec(compile(block_with("parquet"), "README Parquet example", "exec"), namespace)
    top = namespace["top"]
    assert len(top.ids) == 100 and np.all(np.diff(top.scores) <= 0)
    assert "item-" in capsys.readouterr().out
