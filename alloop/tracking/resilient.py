"""A tracker that survives its server being down: retry with backoff, then buffer and go on.

Tracking is a side channel. The label store already holds every answer and round before the
tracker is called, so an unreachable tracking server must cost at most a short wait, never a
round or a label. :class:`ResilientTracker` wraps any :class:`~alloop.tracking.base.Tracker`:

* a call that fails with a *transient* error (the server cannot be reached, times out, or
  answers 5xx) is retried with exponential backoff for a bounded time;
* if the server is still down, the call is queued in memory, a warning names the server once,
  and the loop goes on; while it stays down each later call makes one quick attempt only;
* the first call that gets through first replays the queue, in order;
* :meth:`~ResilientTracker.finish` waits longest (it is the last chance), then gives up with a
  warning that says how to re-log what is missing (``alloop run CONFIG --resume``: the loop
  re-logs every round the store finished but the tracker has not).

Errors that retrying cannot fix (a bad request, a missing run) are raised at once.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from alloop.tracking.base import RoundReport, Tracker

log = logging.getLogger(__name__)

#: Environment variables that override :class:`Backoff`'s two budgets (seconds).
RETRY_SECONDS_ENV = "ALLOOP_TRACKING_RETRY_SECONDS"
FINISH_SECONDS_ENV = "ALLOOP_TRACKING_FINISH_SECONDS"


class TrackingUnavailableWarning(RuntimeWarning):
    """The tracking server could not be reached; the loop goes on and logs later."""


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a number of seconds; unset it or give e.g. 15"
        ) from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must be >= 0 seconds")
    return value


@dataclass(frozen=True)
class Backoff:
    """How long to keep retrying a tracking call before buffering it.

    Parameters
    ----------
    seconds : float
        Time budget of one call during the loop (a round's report, the start of the run).
    finish_seconds : float
        Time budget of the final call (curve, model, buffered rounds) of a loop that finished:
        it is done, so waiting longer costs little and saves a ``--resume``. A loop that failed
        or was interrupted waits ``seconds`` only.
    first_delay, max_delay : float
        The first pause between attempts, doubled after each failure up to ``max_delay``.

    Examples
    --------
    >>> list(Backoff(seconds=10, first_delay=1, max_delay=4).delays(10))
    [1.0, 2.0, 4.0, 3.0]
    """

    seconds: float = 15.0
    finish_seconds: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if min(self.seconds, self.finish_seconds) < 0 or not 0 < self.first_delay <= self.max_delay:
            raise ValueError(
                f"need seconds, finish_seconds >= 0 and 0 < first_delay <= max_delay; got {self!r}"
            )

    @classmethod
    def from_env(cls) -> Backoff:
        """Defaults, with ``ALLOOP_TRACKING_RETRY_SECONDS`` / ``..._FINISH_SECONDS`` applied."""
        return cls(
            seconds=_env_seconds(RETRY_SECONDS_ENV, cls.seconds),
            finish_seconds=_env_seconds(FINISH_SECONDS_ENV, cls.finish_seconds),
        )

    def delays(self, budget: float) -> Iterator[float]:
        """Pauses between attempts: doubling, capped, the last one cut to end on ``budget``."""
        delay, spent = self.first_delay, 0.0
        while spent < budget:
            step = float(min(delay, self.max_delay, budget - spent))
            yield step
            spent += step
            delay *= 2


class ResilientTracker:
    """Retries a tracker's calls with backoff and buffers them while its server is down.

    Parameters
    ----------
    inner : Tracker
        The tracker that talks to the server. Each of its calls must be safe to repeat after a
        transient failure (e.g. a round half-logged is completed, not logged twice).
    transient : callable
        ``transient(exc) -> bool``: True for errors worth retrying (server unreachable).
    backoff : Backoff, optional
        Default: :meth:`Backoff.from_env`.
    where : str
        The server, as warnings name it (e.g. its URL).
    sleep, clock : callable
        ``time.sleep`` and ``time.monotonic``; tests pass fakes.
    """

    def __init__(
        self,
        inner: Tracker,
        transient: Callable[[BaseException], bool],
        *,
        backoff: Backoff | None = None,
        where: str = "the tracking server",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.transient = transient
        self.backoff = backoff if backoff is not None else Backoff.from_env()
        self.where = where
        self._sleep = sleep
        self._clock = clock
        #: calls that did not get through yet, oldest first: (name, arguments)
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._down = False
        self._warned = False
        self._already_logged: set[int] = set()
        self._run_id: str | None = None

    # ----------------------------------------------------------------- the Tracker protocol
    def start(self, run_name: str, params: dict[str, Any], resume_run_id: str | None = None) -> str | None:
        """Open the parent run; ``None`` when the server is down (it is opened later)."""
        self._queue.append(("start", (run_name, params, resume_run_id)))
        self._drain(self.backoff.seconds)
        return self._run_id

    def logged_rounds(self) -> set[int]:
        """Rounds the server has; while it is down, none (duplicates are dropped on replay)."""
        if not self._queue:
            try:
                return self._attempt(self.backoff.seconds, self.inner.logged_rounds)
            except _StillDown:
                pass
        # Unknown: the loop will hand us every finished round; the replay skips those the
        # server turns out to have.
        self._queue.append(("sync", ()))
        return set()

    def log_round(self, report: RoundReport) -> None:
        self._queue.append(("round", (report,)))
        # once the server is known to be down, one quick attempt per round: no waiting
        self._drain(0.0 if self._down else self.backoff.seconds)

    def finish(self, curve: pd.DataFrame, metric: str, model: Any, status: str = "FINISHED") -> None:
        self._queue.append(("finish", (curve, metric, model, status)))
        # a loop that failed or was interrupted should not keep its user waiting long
        budget = self.backoff.finish_seconds if status == "FINISHED" else self.backoff.seconds
        if self._drain(budget):
            return
        rounds = sorted(args[0].round for name, args in self._queue if name == "round")
        missing = (f"rounds {rounds}, " if rounds else "") + "the learning curve and the model"
        warnings.warn(
            f"tracking server {self.where} still unreachable after {budget:g} s: {missing} "
            "were not logged. The labels are safe in the label store; once the server is back, "
            "`alloop run CONFIG --resume` logs them.",
            TrackingUnavailableWarning,
            stacklevel=2,
        )

    # ----------------------------------------------------------------- state
    @property
    def pending(self) -> int:
        """Calls waiting for the server (0 when everything got through)."""
        return len(self._queue)

    @property
    def run_id(self) -> str | None:
        """The parent run's id, once the server has created it."""
        return self._run_id

    # ----------------------------------------------------------------- machinery
    def _apply(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "start":
            self._run_id = self.inner.start(*args)
        elif name == "sync":
            self._already_logged = set(self.inner.logged_rounds())
        elif name == "round":
            if args[0].round not in self._already_logged:
                self.inner.log_round(*args)
        else:
            self.inner.finish(*args)

    def _drain(self, budget: float) -> bool:
        """Replay the queue in order for up to ``budget`` seconds; True once it is empty."""
        while self._queue:
            name, args = self._queue[0]
            try:
                self._attempt(budget, self._apply, name, args)
            except _StillDown:
                return False
            except Exception:
                self._queue.popleft()  # retrying cannot fix it: drop the call, let the error out
                raise
            self._queue.popleft()
        return True

    def _attempt(self, budget: float, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, retried on transient errors for ``budget`` seconds.

        Raises ``_StillDown`` when the budget is spent, and non-transient errors at once.
        """
        pauses = self.backoff.delays(budget)
        while True:
            try:
                result = call(*args)
            except Exception as exc:
                if not self.transient(exc):
                    raise
                pause = next(pauses, None)
                if pause is None:
                    self._went_down(exc)
                    raise _StillDown from exc
                log.info("tracking server %s: %s; retrying in %.1f s", self.where, exc, pause)
                self._sleep(pause)
                continue
            if self._down:
                self._down = False
                log.warning("tracking server %s is reachable again; logging buffered calls", self.where)
            return result

    def _went_down(self, exc: BaseException) -> None:
        self._down = True
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"tracking server {self.where} is unreachable ({_short(exc)}); the loop goes on and "
            "keeps each round's metrics in memory until the server answers again. "
            "Labels do not depend on tracking.",
            TrackingUnavailableWarning,
            stacklevel=2,
        )


class _StillDown(Exception):
    """A call's retry budget ran out on transient errors."""


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
