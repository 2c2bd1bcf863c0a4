"""The oracle protocol: a batch of queries goes out, answers (possibly partial) come back.

:class:`Oracle` declares everything the loop uses of an oracle; :class:`OracleBase` gives the
defaults (never quits, ignores assignments, nothing to close), so an oracle writes ``request``
and inherits the rest. Oracles that wait on people build on :class:`oracles.people.PeopleOracle`.
The records (:class:`Query`, :class:`Answer`) live in :mod:`alloop.records` and are re-exported
here for oracle authors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from alloop.records import Answer, AnswerKind, AnswerSink, Assignment, AssignmentSink, Query

__all__ = [
    "Answer",
    "AnswerKind",
    "AnswerSink",
    "Assignment",
    "AssignmentSink",
    "Oracle",
    "OracleBase",
    "Query",
    "check_oracle",
    "request_answers",
]


@runtime_checkable
class Oracle(Protocol):
    """Anything that answers queries. It may answer only some of them.

    ``request(queries, on_answer=None)`` returns the accepted answers. With ``on_answer`` the
    oracle hands over each answer the moment it is given: ``None`` back means accepted and
    committed, a string means rejected (a person is re-asked, or the problem is reported) and
    the answer is left out of the returned list. Without it the caller stores the returned
    answers afterwards. Oracles that wait on people also take ``min_share`` (the fraction of the
    batch answered before returning) and ``timeout`` (seconds; return what is there when it
    passes), so a round never waits forever.

    The rest is what a loop asks of an oracle around ``request``:

    - ``quit_requested``: the person quit during the last request; the loop stops after storing
      what it has (a resume asks the rest);
    - ``interactive``: it needs the keyboard to itself (a terminal), so it is not asked in
      parallel with others;
    - ``annotator``: whom its answers speak for, or None when it names them itself;
    - ``set_assignment_sink(sink)``: an oracle that splits a batch among annotators calls
      ``sink(assignment)`` before anyone is asked (the loop persists it); others ignore it;
    - ``keep_assignment(pending)``: the next batch's items named there go to exactly those
      annotators (a resumed round); others ignore it;
    - ``close()``: give back what it holds (a web server, temporary files).
    """

    @property
    def quit_requested(self) -> bool: ...

    @property
    def interactive(self) -> bool: ...

    @property
    def annotator(self) -> str | None: ...

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]: ...

    def set_assignment_sink(self, sink: AssignmentSink | None) -> None: ...

    def keep_assignment(self, pending: Assignment) -> None: ...

    def close(self) -> None: ...


class OracleBase(ABC):
    """The defaults of :class:`Oracle`: write :meth:`request`, inherit the rest.

    Examples
    --------
    >>> class Always(OracleBase):
    ...     def request(self, queries, on_answer=None):
    ...         answers = [Answer(q.item_id, 1) for q in queries]
    ...         return [a for a in answers if on_answer is None or on_answer(a) is None]
    >>> oracle = Always()
    >>> [a.label for a in oracle.request([Query("a")])], oracle.quit_requested
    ([1], False)
    >>> isinstance(oracle, Oracle)
    True
    """

    #: needs the keyboard to itself (a terminal)
    interactive: bool = False
    #: whom the answers speak for; None: each answer names its annotator
    annotator: str | None = None
    #: the person quit during the last request
    quit_requested: bool = False

    @abstractmethod
    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        """Answer (some of) ``queries``; hand each answer to ``on_answer`` as it is given."""

    def set_assignment_sink(self, sink: AssignmentSink | None) -> None:  # noqa: B027 (a default)
        """An oracle that does not split batches among annotators has nothing to report."""

    def keep_assignment(self, pending: Assignment) -> None:  # noqa: B027 (a default)
        """An oracle that does not split batches among annotators has nothing to keep."""

    def close(self) -> None:  # noqa: B027 (a default)
        """Nothing to give back."""


_MEMBERS = ("request", "quit_requested", "interactive", "annotator", "set_assignment_sink",
            "keep_assignment", "close")


def check_oracle(oracle: Oracle) -> Oracle:
    """``oracle`` itself if it has every member of :class:`Oracle`; else a TypeError naming the
    missing ones and the fix.

    Examples
    --------
    >>> class RequestOnly:
    ...     def request(self, queries, on_answer=None):
    ...         return []
    >>> check_oracle(RequestOnly())
    Traceback (most recent call last):
    ...
    TypeError: RequestOnly is not an Oracle: it lacks quit_requested, interactive, annotator, set_assignment_sink, keep_assignment, close. Subclass oracles.base.OracleBase, which gives their defaults
    """
    missing = [name for name in _MEMBERS if not hasattr(oracle, name)]
    if missing:
        raise TypeError(
            f"{type(oracle).__name__} is not an Oracle: it lacks {', '.join(missing)}. Subclass "
            "oracles.base.OracleBase, which gives their defaults"
        )
    return oracle


def request_answers(
    oracle: Oracle, queries: Sequence[Query], on_answer: AnswerSink | None
) -> list[Answer]:
    """``oracle.request(queries, on_answer=on_answer)``, with a clear error for an oracle whose
    ``request`` does not take ``on_answer`` (the first protocol's, no longer accepted).

    Examples
    --------
    >>> class Old:
    ...     def request(self, queries):
    ...         return []
    >>> request_answers(Old(), [Query("a")], on_answer=None)
    Traceback (most recent call last):
    ...
    TypeError: Old.request(queries) does not take on_answer: an oracle implements request(queries, on_answer=None) and hands each answer to on_answer(answer) as it is given (None back: stored; a string: refused). Subclass oracles.base.OracleBase and add the parameter
    """
    try:
        return oracle.request(queries, on_answer=on_answer)
    except TypeError as exc:
        # Only an error of the call itself (the arguments did not bind), not one raised inside
        # request: its traceback ends in this frame.
        if exc.__traceback__ is None or exc.__traceback__.tb_next is not None \
                or "on_answer" not in str(exc):
            raise
        raise TypeError(
            f"{type(oracle).__name__}.request(queries) does not take on_answer: an oracle "
            "implements request(queries, on_answer=None) and hands each answer to "
            "on_answer(answer) as it is given (None back: stored; a string: refused). Subclass "
            "oracles.base.OracleBase and add the parameter"
        ) from None
