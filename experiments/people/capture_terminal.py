"""Reproduce the terminal screenshot of docs/people.md: a real `alloop run` under tmux.

A scripted person answers experiments/people/terminal.yaml at the real prompt: the 8 initial
digits with their true labels, then in round 1 one label, one invalid answer (re-prompted), a
skip, an undo (the skipped digit is asked again and labeled), and ``q``. A second
``alloop run ... --resume`` then answers round 2, which offers the two open items first.

Run from the repository root (needs tmux)::

    .venv/bin/python experiments/people/capture_terminal.py [OUT_DIR]

It works in a fresh temporary folder (store, images, MLflow database), in an 80-column tmux
pane, with standard error (MLflow's INFO lines when it creates its database) sent to /dev/null,
and writes the two screens to OUT_DIR (default: that folder) as ``first-run.txt`` and
``resume.txt``. Takes about a minute and a half.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "experiments" / "people" / "terminal.yaml"
ALLOOP = Path(sys.executable).with_name("alloop")
SOCKET = "alloop-docs-capture"
CONF = Path(tempfile.gettempdir()) / "alloop-docs-capture.tmux.conf"
PROMPT = re.compile(r"^(\d+)/(\d+) > ?$")
TITLE = re.compile(r"item (\S+) · (\d+)/(\d+) · answered")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, "-f", str(CONF), *args], check=True, capture_output=True,
                          text=True).stdout


def screen() -> list[str]:
    """Everything the pane has shown so far (scroll-back included), trailing blanks dropped."""
    lines = [line.rstrip() for line in tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-",
                                           "-t", "cap").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def wait_for_prompt(seen: int, timeout: float = 300.0) -> tuple[str, list[str]] | None:
    """Wait until a new prompt is the last line; return (item id, screen), or None if it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = screen()
        if any(line.startswith("EXIT=") for line in lines[-3:]):
            return None
        if len(lines) > seen and lines and PROMPT.match(lines[-1].strip()):
            titles = [m.group(1) for line in lines if (m := TITLE.search(line))]
            return titles[-1], lines
        time.sleep(0.2)
    raise TimeoutError("no prompt appeared:\n" + "\n".join(screen()[-30:]))


def send(text: str) -> None:
    tmux("send-keys", "-t", "cap", "-l", text)
    tmux("send-keys", "-t", "cap", "Enter")


def run(workdir: Path, resume: bool, plan: list[str | None], truth: dict[str, int]) -> list[str]:
    """Start one ``alloop run`` in tmux and answer its prompts by ``plan``.

    ``plan`` holds what to type at each prompt in turn; None types the item's true label. When
    the plan runs out the true label is typed until the run ends.
    """
    command = (f"cd {workdir} && {ALLOOP} run {CONFIG} --tracking-uri sqlite:///{workdir}/mlflow.db"
               f" --no-progress{' --resume' if resume else ''} 2>/dev/null; echo EXIT=$?")
    tmux("new-session", "-d", "-s", "cap", "-x", "80", "-y", "50", command)
    try:
        seen, step = 0, 0
        while (found := wait_for_prompt(seen)) is not None:
            item, lines = found
            seen = len(lines)
            typed = plan[step] if step < len(plan) else None
            send(str(truth[item]) if typed is None else typed)
            step += 1
        return screen()
    finally:
        tmux("kill-server")


def main() -> None:
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed to drive the real prompt (apt-get install tmux)")
    sys.path.insert(0, str(REPO))
    from alloop.config import load_config
    from alloop.experiment import prepare_data

    truth = prepare_data(load_config(CONFIG)).truth
    workdir = Path(tempfile.mkdtemp(prefix="alloop-people-"))
    # A long scroll-back to capture, and the pane kept after the run ends so its last screen
    # can be read.
    CONF.write_text("set -g history-limit 20000\nset -g remain-on-exit on\n")
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else workdir
    out.mkdir(parents=True, exist_ok=True)
    # Round 0: 8 true labels. Round 1: a label, "twelve" then the label, skip, undo, label, quit.
    first = [None] * 8 + [None, "twelve", None, "s", "u", None, "q"]
    (out / "first-run.txt").write_text("\n".join(run(workdir, False, first, truth)) + "\n")
    (out / "resume.txt").write_text("\n".join(run(workdir, True, [], truth)) + "\n")
    print(f"screens in {out}; store, images and MLflow database in {workdir}")


if __name__ == "__main__":
    main()
