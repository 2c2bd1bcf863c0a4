"""The ask stage: every call the loop makes on the oracle lives here.

Before anyone is asked, the oracle's assignment of items to annotators is persisted (its
assignment sink writes to the store), and a crashed round's assignments still without an
answer are handed back to it. The oracle answers through ``on_answer``, which stores each
answer the moment it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from oracles.annotators import accepts_on_answer
from oracles.base import Answer, Query


def ask(oracle: Any, queries: Sequence[Query], on_answer: Callable[[Answer], str | None],
        store: Any, round_: int, pending: dict[str, list[str]]) -> tuple[list[Answer], float]:
    """(the answers the oracle returned, seconds it took); each answer goes to ``on_answer``."""
    if hasattr(oracle, "on_assign"):  # persist who is asked before anyone is
        oracle.on_assign = lambda assignment: store.record_assignments(round_, assignment)
        if pending:
            oracle.keep_assignment(pending)
    t0 = time.perf_counter()
    if not queries:
        answers: list[Answer] = []
    elif accepts_on_answer(oracle):
        answers = oracle.request(list(queries), on_answer=on_answer)
    else:
        answers = oracle.request(list(queries))
    return list(answers), time.perf_counter() - t0


def quit_requested(oracle: Any) -> bool:
    """Whether the person behind the oracle asked to stop (resume later with ``--resume``)."""
    return bool(getattr(oracle, "quit_requested", False))


def close(oracle: Any) -> None:
    """Release what the oracle holds (e.g. the web page's server)."""
    close_ = getattr(oracle, "close", None)
    if callable(close_):
        close_()
