"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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
    exec(compile(blocks[1], "README modAL example", "exec"), namespace)
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
