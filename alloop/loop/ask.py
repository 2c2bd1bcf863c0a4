"""The ask stage: every call the loop makes on the oracle lives here.

Before anyone is asked, the oracle's assignment of items to annotators is persisted (its
assignment sink writes to the store), and a crashed round's assignments still without an
answer are handed back to it. The oracle answers through ``on_answer``, which stores each
answer the moment it is given. Every call is a member the :class:`~oracles.base.Oracle`
protocol declares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from oracles.base import Answer, Oracle, Query, request_answers


def ask(oracle: Oracle, queries: Sequence[Query], on_answer: Callable[[Answer], str | None],
        store: Any, round_: int, pending: dict[str, list[str]]) -> tuple[list[Answer], float]:
    """(the answers the oracle returned, seconds it took); each answer goes to ``on_answer``."""
    # persist who is asked before anyone is
    oracle.set_assignment_sink(lambda assignment: store.record_assignments(round_, assignment))
    if pending:
        oracle.keep_assignment(pending)
    t0 = time.perf_counter()
    answers = request_answers(oracle, list(queries), on_answer=on_answer) if queries else []
    return list(answers), time.perf_counter() - t0


def quit_requested(oracle: Oracle | None) -> bool:
    """Whether the person behind the oracle asked to stop (resume later with ``--resume``);
    never, when rounds are driven by ``query``/``teach`` without an oracle."""
    return oracle is not None and bool(oracle.quit_requested)


def close(oracle: Oracle) -> None:
    """Release what the oracle holds (e.g. the web page's server)."""
    oracle.close()
