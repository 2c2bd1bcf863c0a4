"""docs/people.md is true: its configs parse, its examples print what it shows, its terminal
screens are what the prompt draws, and its file-exchange commands produce the files it quotes."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from alloop.config import load_config, parse_config
from alloop.experiment import build_loop, prepare_data
from alloop.store import LabelStore

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "people.md"
PEOPLE = ROOT / "experiments" / "people"
ELIDED = "⋮"


def doc() -> str:
    return DOC.read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^ *```{lang}\n(.*?)^ *```", doc(), flags=re.S | re.M)


def text_block(starting: str) -> list[str]:
    """The lines of the one ``text`` block that starts with ``starting`` (indent removed)."""
    found = [b for b in blocks("text") if b.lstrip().startswith(starting)]
    assert len(found) == 1, f"{len(found)} text blocks start with {starting!r}"
    lines = found[0].rstrip("\n").splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return [line[indent:] for line in lines]


def in_order(expected: list[str], shown: list[str]) -> None:
    """Every line of ``expected`` but the elision marks appears in ``shown``, in that order."""
    at = 0
    for line in expected:
        if line.strip() == ELIDED:
            continue
        while at < len(shown) and shown[at].rstrip() != line.rstrip():
            at += 1
        assert at < len(shown), f"not shown (in this order): {line!r}\n--- shown:\n" + "\n".join(shown)
        at += 1


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small fits on a shared machine: one thread is fastest
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- configs


def test_every_config_in_the_doc_parses_and_the_examples_match_their_files():
    base = yaml.safe_load((PEOPLE / "terminal.yaml").read_text())
    configs = [yaml.safe_load(b) for b in blocks("yaml")]
    assert len(configs) >= 4
    for config in configs:
        if "name" not in config:  # a fragment: an oracle section on the terminal example
            assert set(config) == {"oracle"}, config
            config = {**base, **config}
        parse_config(config, "docs/people.md")
    for name in ("terminal", "files"):
        on_disk = yaml.safe_load((PEOPLE / f"{name}.yaml").read_text())
        assert on_disk in configs, f"experiments/people/{name}.yaml differs from the doc's copy"
        load_config(PEOPLE / f"{name}.yaml")


# ----------------------------------------------------------------------------- Python examples


def test_python_examples_print_what_the_doc_shows():
    pairs = re.findall(r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", doc(), flags=re.S)
    assert len(pairs) == len(blocks("python")) >= 2, "every Python example is followed by its output"
    for n, (code, expected) in enumerate(pairs):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/people.md example {n + 1}", "exec"), {"__name__": "__doc__"})
        assert out.getvalue() == expected, f"example {n + 1} printed:\n{out.getvalue()}"


# ----------------------------------------------------------------------------- the terminal


class ScriptedPerson:
    """Types at the real TerminalOracle prompt: ``plan`` in turn, then the true label.

    The prompt and the typed text are echoed into the oracle's console, as a terminal shows them.
    """

    def __init__(self, console_file: io.StringIO, truth: dict[str, int], plan: list[str | None]):
        self.out, self.truth, self.plan = console_file, truth, list(plan)
        self.item: str | None = None
        self.shown: list[str] = []

    def __call__(self, message: str, timeout: float | None = None) -> str:
        titles = re.findall(r"item (\S+) · \d+/\d+ · answered", self.out.getvalue())
        self.item = titles[-1]
        if not self.shown or self.shown[-1] != self.item:
            self.shown.append(self.item)
        typed = self.plan.pop(0) if self.plan else None
        typed = str(self.truth[self.item]) if typed is None else typed
        self.out.write(f"{message}{typed}\n")
        return typed


def terminal_loop(truth, plan):
    loop = build_loop(load_config(PEOPLE / "terminal.yaml"), progress=False, track=False)
    screen = io.StringIO()
    # What the CLI's console draws in an 80-column terminal, without colours.
    loop.oracle.console = Console(file=screen, width=80, color_system=None, highlight=False)
    person = ScriptedPerson(screen, truth, plan)
    loop.oracle.prompt = person
    return loop, screen, person


def test_terminal_screens_in_the_doc_are_what_the_prompt_shows(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # the store and the PNGs go under ./.alloop, as with the CLI
    config = load_config(PEOPLE / "terminal.yaml")
    truth = prepare_data(config).truth
    # The captured session: 8 true labels, then a label, "twelve", the label, s, u, the label, q.
    loop, screen, person = terminal_loop(truth, [None] * 8 + [None, "twelve", None, "s", "u", None, "q"])
    try:
        result = loop.run()
    finally:
        loop.store.close()
    assert result.stop_reason == "quit" and result.curve["labels"].tolist() == [8, 11]
    excerpt = text_block("2/5 > twelve")
    stopped = f"{config.name}: {config.strategy.name}, seed {config.seed} (stopped: quit)"
    assert excerpt[-1].strip() == stopped  # the CLI's table title, not drawn by the oracle
    in_order(excerpt[:-1], screen.getvalue().splitlines())

    store = LabelStore(config.store_path())
    round1 = [(a.item_id, a.kind, a.label) for a in store.answers(round=1)]
    assert round1 == [("688", "label", 1), ("1108", "label", 7), ("1363", "skip", None),
                      ("1363", "label", 8)]  # "twelve" was never stored; the undone skip was
    assert [i for i, _ in store.requests(1)][3:] == ["486", "620"]  # left open
    store.close()
    png = tmp_path / ".alloop/people-terminal/images/round-1-item-1363.png"
    from matplotlib.image import imread

    assert imread(png).shape[:2] == (160, 160)

    loop, screen, person = terminal_loop(truth, [])
    try:
        resumed = loop.run(resume=True)
    finally:
        loop.store.close()
    assert resumed.stop_reason == "max_rounds"
    assert resumed.curve["labels"].tolist() == [8, 11, 16]
    assert person.shown[:2] == ["486", "620"] and len(person.shown) == 5
    assert not {"688", "1108", "1363"} & set(person.shown)
    in_order(text_block("╭─ item 486 · 1/5"), screen.getvalue().splitlines())


# ----------------------------------------------------------------------------- the file exchange


def spreadsheet_person(folder: Path, stop: threading.Event, answers_of_round_2: str) -> None:
    """Answers the files run the way docs/people.md tells it."""
    done: set[str] = set()
    while not stop.is_set():
        for request in sorted(folder.glob("round-*-requests.csv")):
            if request.name in done:
                continue
            answers = folder / request.name.replace("requests", "answers")
            if request.name == "round-0-requests.csv":
                # Line 4 is no answer, line 6 has a cell too many, 994's line has no newline yet.
                answers.write_text("item_id,label\n2,2\n382,0\n766,five\n878,5\n899,8,oops\n994,1")
                time.sleep(1.5)
                with open(answers, "a") as fh:  # the rest, a duplicate and the fixed lines
                    fh.write("\n1318,9\n1780,2\n2,2\n766,5\n899,8\n")
            elif request.name == "round-1-requests.csv":
                # The request file saved back with labels: first 3 (one skipped), then all.
                lines = request.read_text().splitlines()
                first = dict(zip(["688", "1108", "1363"], ["1", "7", "skip"]))
                answers.write_text("\n".join([lines[0]] + [
                    line + first.get(line.split(",")[0], "") for line in lines[1:]]) + "\n")
                time.sleep(1.5)
                final = {"688": "1", "1108": "7", "1363": "8", "486": "4", "620": "6"}
                answers.write_text("\n".join([lines[0]] + [
                    line + final[line.split(",")[0]] for line in lines[1:]]) + "\n")
            else:
                answers.write_text(answers_of_round_2)
            done.add(request.name)
        time.sleep(0.05)


def test_file_exchange_run_and_export_as_documented(tmp_path, monkeypatch, caplog, one_thread):
    from typer.testing import CliRunner

    from alloop.cli import app

    text = doc()
    assert "alloop run experiments/people/files.yaml\n" in text
    assert "alloop labels export experiments/people/files.yaml --out labels.csv\n" in text
    monkeypatch.chdir(tmp_path)  # the commands run from a working directory of their own
    config = str(PEOPLE / "files.yaml")
    folder = tmp_path / ".alloop/people-files/exchange"
    folder.mkdir(parents=True)
    round2 = "\n".join(text_block("item_id,label,note")) + "\n"
    stop = threading.Event()
    person = threading.Thread(target=spreadsheet_person, args=(folder, stop, round2), daemon=True)
    person.start()
    runner = CliRunner()
    try:
        run = runner.invoke(app, ["run", config, "--no-progress",
                                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    finally:
        stop.set()
    assert run.exit_code == 0, run.output
    assert "(stopped: max_rounds)" in run.stdout
    reported = [r.getMessage() for r in caplog.records if r.name == "oracles.files"]
    assert reported == text_block("round-0-answers.csv:6:")  # each once, in the doc's order
    assert (folder / "round-1-requests.csv").read_text().splitlines() == text_block("item_id,image,")
    # README.txt is rewritten each round; the doc quotes round 1's, the folder holds round 2's.
    readme = "\n".join(text_block("Round 1:")) + "\n"
    readme = readme.replace("Round 1:", "Round 2:").replace("round-1-", "round-2-")
    assert (folder / "README.txt").read_text() == readme

    export = runner.invoke(app, ["labels", "export", config, "--out", "labels.csv"])
    assert export.exit_code == 0, export.output
    said = re.search(r"printed `(wrote \d+ answers for \d+ items to labels.csv)`", text).group(1)
    assert said in export.stdout
    import pandas as pd

    frame = pd.read_csv(tmp_path / "labels.csv")
    assert frame.loc[frame["item_id"] == 1363, "kind"].tolist() == ["skip", "label"]
    assert frame.loc[frame["item_id"] == 857, "kind"].tolist() == ["unsure"]
    assert frame.loc[frame["item_id"] == 857, "label"].isna().all()
