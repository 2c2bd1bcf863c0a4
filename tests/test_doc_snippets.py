"""Every fenced Python block in README.md and docs/ runs alone, as pasted into a new session.

Each block runs in a fresh namespace in its own empty folder. A block that needs a service
says so on the line above its fence (``<!-- needs: postgres -->``, ``label-studio``, ``ray``);
it runs when that service can be started here and is skipped, naming it, when not.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- needs: ([a-z-]+) -->\n)?```python\n(.*?)```", flags=re.S)


def blocks():
    for path in FILES:
        for n, match in enumerate(BLOCK.finditer(path.read_text())):
            yield pytest.param(match.group(1), match.group(2),
                               id=f"{path.relative_to(ROOT)}#{n + 1}")


def available(service: str) -> str | None:
    """Why ``service`` cannot run here, or None when it can."""
    try:
        if service == "postgres":
            from alloop.services.postgres import find_binaries

            find_binaries()
        elif service == "label-studio":
            from oracles.label_studio.server import find_label_studio

            find_label_studio()
        elif service == "ray":
            import ray  # noqa: F401
        else:
            return f"unknown service {service!r} in a needs marker"
    except (FileNotFoundError, ImportError, RuntimeError) as exc:
        return f"{service} is not installed here: {exc}"
    return None


def test_there_are_blocks_in_the_readme_and_the_docs():
    found = {p.values[0] for p in blocks()} | {p.id.split("#")[0] for p in blocks()}
    assert "README.md" in found and any(f.startswith("docs/") for f in found)


@pytest.mark.parametrize("needs, code", list(blocks()))
def test_block_runs_alone(needs, code, tmp_path, monkeypatch):
    if needs is not None:
        reason = available(needs)
        if reason is not None:
            if reason.startswith("unknown"):
                pytest.fail(reason)
            pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "snippet", "exec"), {"__name__": "__main__"})
    finally:
        if needs == "ray":  # a block's ray.init would make the next test's ray.init fail
            import ray

            if ray.is_initialized():
                ray.shutdown()
