"""People oracles say what to do on the terminal, at the default logging level."""

import io
import subprocess
import sys

import yaml

from oracles.instructions import (
    files_instructions,
    label_studio_instructions,
    tell,
    web_instructions,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_files_run_tells_the_person_what_to_do_with_default_logging(tmp_path):
    config = {
        "name": "files-say", "seed": 0,
        "data": {"source": "sklearn:iris"},
        "strategy": {"name": "margin"},
        "loop": {"initial": 4, "batch_size": 2, "rounds": 1},
        "oracle": {"kind": "files", "dir": str(tmp_path / "exchange"), "timeout": 1,
                   "poll_interval": 0.2},
        "store": {"path": str(tmp_path / "labels.sqlite")},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "alloop", "run", "c.yaml", "--no-progress",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    err = proc.stderr
    assert f"the items are in {tmp_path / 'exchange' / 'round-0-requests.csv'}" in err
    assert "as round-0-answers.csv" in err
    assert "valid answers: 0, 1, 2, skip (s), unsure (?)" in err
    # nobody answered: the run ends saying how to continue
    assert proc.returncode == 2 and "--resume" in err


def test_plain_lines_off_a_terminal_and_a_panel_on_one():
    title, lines = web_instructions("http://127.0.0.1:8765/", None, None, ["bob", "eve"])
    plain = io.StringIO()
    tell(title, lines, stream=plain)
    assert plain.getvalue().splitlines() == [
        "annotation page",
        "  open http://127.0.0.1:8765/ and sign in with your token",
        "  annotators without a token yet: bob, eve; make one with: alloop annotate token "
        "CONFIG --annotator ID",
    ]
    panel = Terminal()
    tell(*label_studio_instructions("http://ls:8080/projects/7/", 2, 10), stream=panel)
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", panel.getvalue())  # colours off
    assert text.startswith("╭") and "round 2: 10 tasks in Label Studio" in text
    assert "http://ls:8080/projects/7/" in text


def test_brackets_in_file_names_are_not_markup():
    from pathlib import Path

    title, lines = files_instructions(1, 3, Path("x/[team]/round-1-requests.csv"),
                                      Path("x/[team]/round-1-answers.csv"), "a, b")
    out = Terminal()
    tell(title, lines, stream=out)
    assert "x/[team]/round-1-requests.csv" in out.getvalue()
