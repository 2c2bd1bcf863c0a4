"""Several annotators: who they are, who gets which item, and one oracle that asks them all.

:class:`MultiAnnotatorOracle` splits a batch among per-annotator oracles by an assignment policy
(each item to one annotator, or to ``k`` of them for redundancy), asks them (at the same time
unless one of them is interactive), and stamps every answer with the annotator it came from.
Answers are handed on raw; combining disagreeing answers is :mod:`alloop.aggregation`'s job.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from oracles.base import (
    Answer,
    AnswerSink,
    Assignment,
    AssignmentSink,
    Oracle,
    OracleBase,
    Query,
    check_oracle,
    request_answers,
)

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")


def annotator_id(value: object) -> str:
    """Validate an annotator id: 1–64 characters, letters, digits and ``_ . @ + -``.

    Examples
    --------
    >>> annotator_id("ana.lopez")
    'ana.lopez'
    >>> annotator_id("two words")
    Traceback (most recent call last):
    ...
    ValueError: annotator id 'two words' is not valid: use 1-64 letters, digits and _ . @ + - (starting with a letter or digit)
    """
    text = str(value)
    if not _ID.match(text):
        raise ValueError(
            f"annotator id {text!r} is not valid: use 1-64 letters, digits and _ . @ + - "
            "(starting with a letter or digit)"
        )
    return text


class AssignmentPolicy(Protocol):
    """Chooses annotators for items: ``assign(item_ids, annotators, k, round)``."""

    def assign(
        self, item_ids: Sequence[str], annotators: Sequence[str], k: int, round: int = 0
    ) -> dict[str, tuple[str, ...]]: ...


def _check_k(annotators: Sequence[str], k: int) -> None:
    if not 1 <= k <= len(annotators):
        raise ValueError(
            f"k = {k} annotators per item is impossible with {len(annotators)} annotator(s) "
            f"{list(annotators)!r}; use 1 ≤ k ≤ {len(annotators)}"
        )


@dataclass
class RoundRobin:
    """Deal items out in turn: item ``j`` goes to annotators ``start + j, …, start + j + k − 1``.

    ``start`` is drawn from ``(seed, round)``, so a round assigns the same way after a resume,
    and each annotator gets ``⌊n k / m⌋`` or ``⌈n k / m⌉`` of ``n`` items.

    Examples
    --------
    >>> RoundRobin(seed=0).assign(["a", "b", "c"], ["x", "y"], k=1, round=0)
    {'a': ('y',), 'b': ('x',), 'c': ('y',)}
    """

    seed: int = 0

    def assign(
        self, item_ids: Sequence[str], annotators: Sequence[str], k: int = 1, round: int = 0
    ) -> dict[str, tuple[str, ...]]:
        _check_k(annotators, k)
        m = len(annotators)
        start = int(np.random.default_rng([self.seed, round]).integers(m))
        return {
            item: tuple(annotators[(start + j + t) % m] for t in range(k))
            for j, item in enumerate(item_ids)
        }


@dataclass
class LeastLoaded:
    """Give each item to the ``k`` annotators with the fewest items so far (ties: seeded draw).

    The load counts every assignment this policy has made; seed it with ``loads`` (e.g. counted
    from the label store) to carry it across a resume.
    """

    seed: int = 0
    loads: dict[str, int] | None = None

    def assign(
        self, item_ids: Sequence[str], annotators: Sequence[str], k: int = 1, round: int = 0
    ) -> dict[str, tuple[str, ...]]:
        _check_k(annotators, k)
        if self.loads is None:
            self.loads = {}
        rng = np.random.default_rng([self.seed, round])
        out: dict[str, tuple[str, ...]] = {}
        loads = self.loads
        for item in item_ids:
            tie = rng.random(len(annotators))
            keys = [(loads.get(a, 0), t, a) for a, t in zip(annotators, tie)]
            chosen = tuple(a for _, _, a in sorted(keys)[:k])
            for a in chosen:
                loads[a] = loads.get(a, 0) + 1
            out[item] = chosen
        return out


POLICIES = {"round-robin": RoundRobin, "least-loaded": LeastLoaded}


class Dealer:
    """Deals each batch's items out to annotators: a kept assignment (a resumed round) first,
    the policy for the rest. Shared by the oracles that split batches.

    Parameters
    ----------
    annotators : sequence of str
    k : int
        Annotators per item.
    policy : "round-robin", "least-loaded" or an AssignmentPolicy
    seed : int
        Seeds a policy named by its string.

    Examples
    --------
    >>> dealer = Dealer(["x", "y"], k=1, policy="round-robin", seed=0)
    >>> dealer.keep({"b": ["x"]})
    >>> dealer.deal([Query("a"), Query("b")])
    {'a': ('y',), 'b': ('x',)}
    """

    def __init__(
        self, annotators: Sequence[str], k: int, policy: str | AssignmentPolicy, seed: int = 0
    ) -> None:
        self.annotators = list(annotators)
        _check_k(self.annotators, k)
        self.k = int(k)
        if isinstance(policy, str):
            if policy not in POLICIES:
                raise ValueError(f"unknown policy {policy!r}; choose one of {sorted(POLICIES)}")
            policy = POLICIES[policy](seed=seed)
        self.policy = policy
        self._kept: dict[str, tuple[str, ...]] = {}

    def keep(self, pending: Assignment) -> None:
        """Give the next batch's items named here to exactly these annotators."""
        unknown = {a for people in pending.values() for a in people} - set(self.annotators)
        if unknown:
            raise ValueError(f"kept assignment names annotators {sorted(unknown)} that are not "
                             f"configured (known: {', '.join(self.annotators)})")
        self._kept = {str(i): tuple(people) for i, people in pending.items()}

    def deal(self, queries: Sequence[Query]) -> dict[str, tuple[str, ...]]:
        """item id → its annotators, for one batch (the kept assignment is used up)."""
        round_ = queries[0].round if queries else 0
        kept, self._kept = self._kept, {}
        fresh = [q.item_id for q in queries if q.item_id not in kept]
        return {**self.policy.assign(fresh, self.annotators, self.k, round_),
                **{q.item_id: kept[q.item_id] for q in queries if q.item_id in kept}}


class MultiAnnotatorOracle(OracleBase):
    """Ask several annotators, each through their own oracle.

    Parameters
    ----------
    oracles : mapping annotator id → Oracle
        One oracle per person (a terminal, a file-exchange folder, a simulated annotator, ...).
    k : int
        Annotators per item (``k > 1`` asks for redundant answers to aggregate).
    policy : "round-robin", "least-loaded" or an AssignmentPolicy
    seed : int
        Seeds the policy's draws.
    parallel : bool, optional
        Ask the annotators at the same time (threads). Default: yes, unless one of the oracles
        is interactive (a terminal), which must have the keyboard to itself.
    assignment_sink : callable, optional
        Called with the assignment (item id → annotator ids) of each batch before anyone is
        asked, e.g. to persist it in the label store (the loop sets it through
        :meth:`set_assignment_sink`).

    Notes
    -----
    Every answer an oracle gives is stamped with that oracle's annotator id: an oracle speaks
    only for its own annotator. An answer that names another annotator (a line in ana's file
    saying ``bob``) is rejected with a message, as is an answer for an item that oracle was not
    asked about. Rejections reach the oracle
    through ``on_answer`` (a person is re-asked, a file line is reported) and are listed in
    :attr:`problems`.

    Examples
    --------
    >>> from oracles import SimulatedOracle
    >>> truth = {"a": 0, "b": 1}
    >>> team = MultiAnnotatorOracle({"ann": SimulatedOracle(truth), "bob": SimulatedOracle(truth)}, k=2)
    >>> sorted((a.item_id, a.annotator) for a in team.request([Query("a"), Query("b")]))
    [('a', 'ann'), ('a', 'bob'), ('b', 'ann'), ('b', 'bob')]
    """

    def __init__(
        self,
        oracles: Mapping[str, Oracle],
        k: int = 1,
        policy: str | AssignmentPolicy = "round-robin",
        *,
        seed: int = 0,
        parallel: bool | None = None,
        assignment_sink: AssignmentSink | None = None,
    ) -> None:
        if not oracles:
            raise ValueError("MultiAnnotatorOracle needs at least one annotator's oracle")
        self.oracles = {annotator_id(a): check_oracle(o) for a, o in oracles.items()}
        self.ids = list(self.oracles)
        self.dealer = Dealer(self.ids, k, policy, seed)
        self.k, self.policy = self.dealer.k, self.dealer.policy
        self.parallel = not self.interactive if parallel is None else parallel
        self._assignment_sink = assignment_sink
        self.problems: list[str] = []
        self.assignment: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    @property
    def interactive(self) -> bool:  # type: ignore[override]
        """Whether one of the annotators' oracles needs the keyboard to itself."""
        return any(o.interactive for o in self.oracles.values())

    @property
    def quit_requested(self) -> bool:  # type: ignore[override]
        """Whether an annotator quit during the last request (at a terminal, say)."""
        return any(o.quit_requested for o in self.oracles.values())

    def set_assignment_sink(self, sink: AssignmentSink | None) -> None:
        """Call ``sink`` with each batch's assignment before anyone is asked."""
        self._assignment_sink = sink

    def keep_assignment(self, pending: Assignment) -> None:
        """Give the next batch's items named here to exactly these annotators, not the policy's
        choice: a resumed round asks only the assignments that have no answer yet."""
        self.dealer.keep(pending)

    def close(self) -> None:
        """Close every annotator's oracle (all of them, even if one fails)."""
        errors: list[BaseException] = []
        for oracle in self.oracles.values():
            try:
                oracle.close()
            except Exception as exc:  # the others are still closed; the first is re-raised
                errors.append(exc)
        if errors:
            raise errors[0]

    def assign(self, queries: Sequence[Query]) -> dict[str, list[Query]]:
        """annotator id → the queries the policy gives them (also kept in :attr:`assignment`)."""
        self.assignment = self.dealer.deal(queries)
        batches: dict[str, list[Query]] = {a: [] for a in self.ids}
        for q in queries:
            for a in self.assignment[q.item_id]:
                batches[a].append(q)
        return batches

    def check(self, answer: Answer, source: str, asked: set[str]) -> tuple[Answer | None, str | None]:
        """Stamp an answer from ``source``'s oracle, or say why it is rejected."""
        if answer.item_id not in asked:
            return None, (
                f"item {answer.item_id!r} was not given to annotator {source!r} in this batch"
            )
        oracle = self.oracles[source]
        named = answer.annotator
        if oracle.annotator is None or named in (None, "", oracle.annotator, source):
            stamped = source
        elif named in self.oracles:
            # Identity comes from where the answer came, never from its text: ana's file (or
            # page, or terminal) cannot vote for bob.
            return None, (
                f"the answer names annotator {named!r} but came from {source!r}'s oracle, which "
                f"speaks only for {source!r}; {named!r} answers through their own"
            )
        else:
            return None, (
                f"annotator {named!r} is not configured (known: {', '.join(self.ids)}); "
                "use one of those ids"
            )
        return replace(answer, annotator=stamped), None

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        """Fan the batch out; return the accepted, stamped answers in the order they arrived.

        The call returns when every annotator's oracle has returned: give people's oracles a
        ``timeout`` (and ``min_share``) so that a round cannot wait forever.
        """
        self.problems = []
        batches = self.assign(list(queries))
        if self._assignment_sink is not None:
            self._assignment_sink(dict(self.assignment))
        arrived: list[Answer] = []
        errors: list[BaseException] = []

        def ask(source: str) -> None:
            batch = batches[source]
            asked = {q.item_id for q in batch}

            def sink(answer: Answer) -> str | None:
                stamped, problem = self.check(answer, source, asked)
                # Commit and record under one lock, so the returned order is the commit order
                # even when annotators answer at the same moment.
                with self._lock:
                    if problem is None and on_answer is not None:
                        problem = on_answer(stamped)
                    if problem:
                        self.problems.append(f"{source}: {problem}")
                        log.warning("answer from %s not taken: %s", source, problem)
                    else:
                        arrived.append(stamped)
                return problem or None

            try:
                request_answers(self.oracles[source], batch, on_answer=sink)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)

        busy = [a for a in self.ids if batches[a]]
        if self.parallel:
            threads = [threading.Thread(target=ask, args=(a,), name=f"annotator-{a}", daemon=True)
                       for a in busy]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for a in busy:
                ask(a)
                if errors:
                    break
        if errors:
            raise errors[0]
        return arrived
