"""What the person labelling must do now, said on the terminal whatever the logging level.

People oracles wait for someone; a run that only logs at INFO shows a still progress bar until
its timeout. Each one calls :func:`tell` when it starts waiting: a rich panel on an interactive
terminal, plain lines otherwise (a log file, a CI job, a pipe), always on standard error so the
results on standard output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO


def tell(title: str, lines: Sequence[str], *, stream: TextIO | None = None) -> None:
    """Show ``title`` and ``lines`` to the person at the terminal.

    Parameters
    ----------
    title : str
        What this is about, e.g. ``"round 3: label 10 items"``.
    lines : sequence of str
        One instruction a line, plain text (never rich markup: file names may hold brackets).
    stream : text file, optional
        Where to write (default: ``sys.stderr`` at call time).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> tell("round 1: label 2 items", ["open requests.csv"], stream=out)
    >>> print(out.getvalue(), end="")
    round 1: label 2 items
      open requests.csv
    """
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        stream.write(title + "\n" + "".join(f"  {line}\n" for line in lines))
        stream.flush()
        return
    import io
    import shutil

    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    panel = Panel(Text("\n".join(lines)), title=Text(title, style="bold"), title_align="left",
                  border_style="cyan", expand=False)
    # Rendered first, then written whole: under a progress bar sys.stderr is rich's proxy,
    # which prints complete lines above the bar (a console writing to it piecemeal does not).
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, width=shutil.get_terminal_size().columns).print(panel)
    stream.write(buffer.getvalue())
    stream.flush()


def files_instructions(
    round_: int,
    n_items: int,
    requests: Path,
    answers: Path,
    valid_answers: str,
    *,
    jsonl: bool = False,
    annotators: Iterable[str] | None = None,
) -> tuple[str, list[str]]:
    """The title and lines for the file exchange: which file to read, which to write, what to put.

    Examples
    --------
    >>> title, lines = files_instructions(1, 10, Path("x/round-1-requests.csv"),
    ...                                   Path("x/round-1-answers.csv"), "0, 1, skip (s), unsure (?)")
    >>> title
    'round 1: 10 items to label (files)'
    >>> lines[0]
    'the items are in x/round-1-requests.csv'
    """
    how = (f"save a copy with the label column filled in as {answers.name} (same folder)"
           if not jsonl else
           f'write {answers.name} in that folder, one JSON object a line: '
           '{"item_id": "...", "label": ...}')
    lines = [
        f"the items are in {requests}",
        how,
        f"valid answers: {valid_answers}",
        "it is read as you save it, partly filled or not; every answer is stored at once",
    ]
    if annotators is not None:
        lines.insert(3, f"put your id in the annotator column: {', '.join(sorted(annotators))}")
    return f"round {round_}: {n_items} items to label (files)", lines


def web_instructions(url: str, round_: int | None, n_items: int | None,
                     without_token: Sequence[str]) -> tuple[str, list[str]]:
    """The title and lines for the annotation page: its address and who cannot sign in yet.

    Examples
    --------
    >>> web_instructions("http://127.0.0.1:8765/", 2, 5, ["bob"])[1][1]
    'annotators without a token yet: bob; make one with: alloop annotate token CONFIG --annotator ID'
    """
    title = ("annotation page" if round_ is None else
             f"round {round_}: {n_items} items on the annotation page")
    lines = [f"open {url} and sign in with your token"]
    if without_token:
        lines.append(f"annotators without a token yet: {', '.join(without_token)}; make one "
                     "with: alloop annotate token CONFIG --annotator ID")
    return title, lines


def label_studio_instructions(project_url: str, round_: int, n_tasks: int) -> tuple[str, list[str]]:
    """The title and lines for a Label Studio round: the project's address.

    Examples
    --------
    >>> label_studio_instructions("http://127.0.0.1:8080/projects/3/", 1, 10)[1][0]
    'label them at http://127.0.0.1:8080/projects/3/'
    """
    return (f"round {round_}: {n_tasks} tasks in Label Studio",
            [f"label them at {project_url}", "every submitted annotation is stored at once"])
