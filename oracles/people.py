"""What the oracles that wait on people share: how long to wait, and how items are shown.

The terminal, the file exchange, the web page and Label Studio each ask people and wait for
them. :class:`PeopleOracle` holds their common settings (``min_share``, ``timeout``,
``poll_interval``; the :class:`~oracles.display.QueryDisplay` and its ``show_prediction`` /
``show_score``) and the state of a wait (``timed_out``, ``quit_requested``, :meth:`cancel`).
"""

from __future__ import annotations

import math
import threading
import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from alloop.records import Answer, AnswerSink, Query
from oracles.base import OracleBase
from oracles.display import QueryDisplay


def check_wait_settings(
    min_share: float, timeout: float | None, poll_interval: float | None = None
) -> None:
    """Raise a clear error for the settings of an oracle that waits on people.

    Examples
    --------
    >>> check_wait_settings(1.5, None)
    Traceback (most recent call last):
    ...
    ValueError: min_share must be in [0, 1]; got 1.5
    """
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1]; got {min_share!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or ≥ 0 seconds; got {timeout!r}")
    if poll_interval is not None and poll_interval < 0:
        raise ValueError(f"poll_interval must be ≥ 0 seconds; got {poll_interval!r}")


def round_of(queries: Sequence[Query]) -> int:
    """The one round a batch belongs to (0 for an empty batch).

    Examples
    --------
    >>> round_of([Query("a", round=2), Query("b", round=2)])
    2
    """
    rounds = {q.round for q in queries}
    if len(rounds) > 1:
        raise ValueError(f"one request must hold one round's queries; got rounds {sorted(rounds)}")
    return next(iter(rounds)) if rounds else 0


class PeopleOracle(OracleBase):
    """Base of the oracles that wait on people: a subclass writes :meth:`_ask_people`.

    Parameters
    ----------
    min_share : float
        Return once this fraction of the batch is answered (skip and unsure count).
    timeout : float, optional
        Seconds a request waits at most; then it returns what has arrived. None waits until
        ``min_share`` is met.
    poll_interval : float, optional
        Seconds between looks for new answers (oracles that poll; None for those that are told).
    display : QueryDisplay, optional
        How items are shown; by default built from ``image_dir``, ``feature_names``,
        ``show_prediction`` and ``show_score``.

    Attributes
    ----------
    timed_out : bool
        The last request ended because its timeout passed (or :meth:`cancel`).
    quit_requested : bool
        The last request ended by a quit (``q``, Ctrl-C, end of input).
    """

    def __init__(
        self,
        *,
        min_share: float = 1.0,
        timeout: float | None = None,
        poll_interval: float | None = None,
        display: QueryDisplay | None = None,
        image_dir: str | Path | None = None,
        feature_names: Sequence[str] | None = None,
        show_prediction: bool = True,
        show_score: bool = True,
    ) -> None:
        check_wait_settings(min_share, timeout, poll_interval)
        self.min_share = min_share
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.show_prediction = show_prediction
        self.show_score = show_score
        self.display = display or QueryDisplay(
            image_dir, feature_names, show_prediction=show_prediction, show_score=show_score
        )
        self.timed_out = False
        self.quit_requested = False
        self._stop = threading.Event()

    def cancel(self) -> None:
        """End the current wait now, as if the timeout had passed (safe from another thread)."""
        self._stop.set()

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        """Ask people about the batch and wait for them; return the accepted answers.

        Each answer goes to ``on_answer`` the moment it is given; the wait ends once
        ``min_share`` of the batch is answered, at ``timeout``, on a quit or on :meth:`cancel`.
        """
        self.timed_out = False
        self.quit_requested = False
        self._stop.clear()
        queries = list(queries)
        return self._ask_people(queries, on_answer) if queries else []

    @abstractmethod
    def _ask_people(self, queries: list[Query], on_answer: AnswerSink | None) -> list[Answer]:
        """Ask about a non-empty batch and wait (the oracle's own way); the accepted answers."""

    def _deadline(self) -> float | None:
        """When a wait starting now ends (``time.monotonic`` clock; None: it does not)."""
        return None if self.timeout is None else time.monotonic() + self.timeout

    def needed(self, n: int) -> int:
        """Answers out of ``n`` that end a request: ``⌈min_share · n⌉``.

        Examples
        --------
        >>> class Demo(PeopleOracle):
        ...     def _ask_people(self, queries, on_answer): return []
        >>> Demo(min_share=0.5).needed(5)
        3
        """
        return math.ceil(self.min_share * n - 1e-9)

    def _wait_poll(self, deadline: float | None) -> bool:
        """Wait one poll interval (less if the deadline comes first); False, with
        :attr:`timed_out` set, once the deadline has passed or :meth:`cancel` was called."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if (remaining is not None and remaining <= 0) or self._stop.is_set():
            self.timed_out = True
            return False
        interval = self.poll_interval or 0.0
        wait = interval if remaining is None else min(interval, remaining)
        self._stop.wait(max(wait, 0.0))
        return True
