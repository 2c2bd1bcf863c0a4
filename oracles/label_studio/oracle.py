"""People answer in Label Studio: each batch becomes tasks, annotations come back as answers.

:class:`LabelStudioOracle` pushes a round's queries as tasks to a Label Studio project (the
model's prediction as a pre-annotation, tasks in order of query score), then polls the tasks
and hands each new annotation on as an answer, with the annotator's Label Studio account as
its annotator. A skipped task is a ``skip`` answer; a task deleted in Label Studio leaves its
item unanswered (the loop offers it again next round) and is not waited for.

Taking an annotation is idempotent: the ids (and a fingerprint of the content) of annotations
already handed on are written into the task's ``meta``, so a restarted run never passes one on
twice, and an item offered again reuses its open task instead of creating a duplicate.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oracles.answers import AnswerError, AnswerParser
from oracles.base import Answer, AnswerSink, Query
from oracles.instructions import label_studio_instructions, tell
from oracles.label_studio.api import LabelStudioAPI, SdkAPI, describe, server_errors
from oracles.label_studio.schema import (
    META_KEY,
    SCORE_KEY,
    LabelSchema,
    bookkeeping,
    fingerprint,
    label_config,
    read_annotation,
    read_schema,
    task_payload,
)
from oracles.people import PeopleOracle, round_of

log = logging.getLogger(__name__)

#: first words of the description of projects alloop creates (how a restart finds its project).
CREATED_BY = "Created by alloop"


@dataclass
class _Open:
    """A task of the current request: the item it asks about and what was taken from it."""

    task_id: int
    item_id: str
    meta: dict[str, Any]
    taken: dict[str, str]


class LabelStudioOracle(PeopleOracle):
    """Ask people through a Label Studio project.

    Parameters
    ----------
    url : str
        The Label Studio server, e.g. ``http://127.0.0.1:8080``.
    token_env : str
        The environment variable holding the API token (a legacy token or a personal access
        token, from *Account & Settings*). The token itself is never logged, shown or stored.
    project_id : int, optional
        An existing project to push tasks to. Its labeling interface needs a Choices tag
        (classification) or a Number tag (regression). Default: the project alloop created
        earlier under ``title``, else a new one, created on the first batch with an interface
        fitting the items (text, image or feature table).
    title : str
        Title of a created project (cut to the 50 characters Label Studio allows).
    task : {"classification", "regression"}
    classes : sequence, optional
        The label set (classification).
    feature_names : sequence of str, optional
        Names of feature-vector entries, for feature tables.
    show_prediction : bool
        Pre-annotate tasks with the model's prediction.
    show_score : bool
        Show the query score on the task.
    poll_interval : float
        Seconds between polls of the tasks.
    min_share : float
        Return once this fraction of the batch is answered (skips count; deleted tasks leave
        the batch).
    timeout : float, optional
        Seconds to wait; then return what has arrived. None waits until ``min_share`` is met.
    api : LabelStudioAPI, optional
        The server calls (default: label-studio-sdk with ``url`` and the token); for tests.

    Examples
    --------
    >>> import os
    >>> os.environ["LS_DOCTEST_TOKEN"] = "not-a-real-token"
    >>> oracle = LabelStudioOracle("http://127.0.0.1:8080", token_env="LS_DOCTEST_TOKEN",
    ...                            classes=["ham", "spam"], timeout=600)
    >>> oracle  # the token is nowhere in it
    LabelStudioOracle(url='http://127.0.0.1:8080', project_id=None, token_env='LS_DOCTEST_TOKEN')
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        token_env: str = "LABEL_STUDIO_API_KEY",
        project_id: int | None = None,
        title: str = "alloop",
        task: str = "classification",
        classes: Sequence[Any] | None = None,
        feature_names: Sequence[str] | None = None,
        show_prediction: bool = True,
        show_score: bool = True,
        poll_interval: float = 1.0,
        min_share: float = 1.0,
        timeout: float | None = None,
        api: LabelStudioAPI | None = None,
    ) -> None:
        super().__init__(min_share=min_share, timeout=timeout, poll_interval=poll_interval,
                         feature_names=feature_names, show_prediction=show_prediction,
                         show_score=show_score)
        if project_id is not None and int(project_id) < 1:
            raise ValueError(f"project_id must be a positive integer; got {project_id!r}")
        self.url = str(url).rstrip("/")
        self.token_env = token_env
        if api is None:
            token = os.environ.get(token_env, "").strip()
            if not token:
                raise ValueError(
                    f"no Label Studio API token: set the environment variable {token_env} to "
                    "your token (Label Studio: Account & Settings), or name another variable "
                    "in oracle.label_studio.token_env"
                )
            api = SdkAPI(self.url, token)
        self.api = api
        self.project_id = None if project_id is None else int(project_id)
        # Label Studio wants 3 to 50 characters.
        title = str(title) if len(str(title)) >= 3 else f"alloop {title}"
        self.title = title[:50]
        self.task = task
        self.parser = AnswerParser(classes, task)
        self.classes = None if task == "regression" else list(self.parser.classes)
        self.schema: LabelSchema | None = None
        self.problems: list[str] = []
        self.deleted: list[int] = []
        self._users: dict[int, str] = {}
        self._reported: set[str] = set()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(url={self.url!r}, project_id={self.project_id!r}, "
                f"token_env={self.token_env!r})")

    # ----------------------------------------------------------------- project
    def ensure_project(self, kind: str = "text") -> int:
        """The project id, finding or creating the project on first use.

        ``kind`` (text, image, table) shapes the interface of a project created now.
        """
        if self.project_id is None:
            mine = [p for p in self.api.find_projects(self.title)
                    if p.get("title") == self.title
                    and str(p.get("description") or "").startswith(CREATED_BY)]
            if mine:
                self.project_id = int(min(p["id"] for p in mine))
                log.info("using Label Studio project %d (%r), created by an earlier run",
                         self.project_id, self.title)
            else:
                config = label_config(kind, self.task, self.classes, show_score=self.show_score)
                self.project_id = self.api.create_project(
                    self.title, f"{CREATED_BY} for the experiment {self.title!r}.", config,
                )
                log.info("created Label Studio project %d (%r) at %s",
                         self.project_id, self.title, self.url)
        if self.schema is None:
            project = self.api.project(self.project_id)
            self.schema = read_schema(project.get("parsed_label_config") or {}, self.task)
            self._check_choices()
        return self.project_id

    def _check_choices(self) -> None:
        if self.task == "regression" or self.schema is None:
            return
        known = []
        for choice in self.schema.choices:
            try:
                known.append(self.parser.parse(choice).label)
            except AnswerError:
                self._report(f"choice {choice!r} of project {self.project_id} is not a class "
                             f"of the data ({self.classes!r}); answers picking it are refused")
        missing = [c for c in self.classes or [] if c not in known]
        if missing:
            self._report(f"project {self.project_id} offers no choice for class(es) "
                         f"{missing!r}; add them to its labeling interface")

    # ----------------------------------------------------------------- pushing
    def push(self, queries: Sequence[Query]) -> list[int]:
        """Put a batch into the project; return the ids of the tasks that ask about it.

        An item with an open task (pushed before, nothing taken from it yet) keeps that task,
        marked with the new round; others get a new task. New tasks are imported in order of
        query score (highest first), which sequential sampling shows first.
        """
        queries = list(queries)
        round_ = round_of(queries)
        shown = [(q, self.display(q)) for q in queries]
        kind = next((d.kind for _, d in shown if d.kind != "empty"), "text")
        project = self.ensure_project(kind)
        existing: dict[str, list[tuple[int, dict[str, Any], dict[str, Any]]]] = {}
        for t in self.api.tasks(project):
            entry = bookkeeping(t)
            if entry is not None:
                existing.setdefault(entry["item_id"], []).append((int(t["id"]), entry, t))
        task_ids: list[int] = []
        fresh: list[tuple[float, dict[str, Any]]] = []
        for q, d in shown:
            relabel = q.proposed_label is not None
            reusable = [(tid, entry, t) for tid, entry, t in existing.get(q.item_id, [])
                        if not entry["taken"] and entry["relabel"] == relabel]
            if reusable:
                for tid, entry, t in reusable:
                    meta = dict(t.get("meta") or {})
                    meta[META_KEY] = {**entry, "round": round_}
                    data = {**(t.get("data") or {}),
                            SCORE_KEY: "" if d.score is None else float(f"{d.score:.6g}")}
                    self.api.update_task(tid, meta=meta, data=data)
                    task_ids.append(tid)
                continue
            guess = q.proposed_label if relabel else (q.prediction if self.show_prediction else None)
            if guess is not None and self.task == "classification":
                guess = _as_choice(guess, self.parser)
            payload = task_payload(d, q.raw if q.raw is not None else q.x, self.schema,
                                   round=round_, pre_annotation=guess, relabel=relabel)
            score = -math.inf if q.score is None or not math.isfinite(q.score) else float(q.score)
            fresh.append((score, payload))
        fresh.sort(key=lambda pair: -pair[0])
        if fresh:
            task_ids += self.api.import_tasks(project, [p for _, p in fresh])
        log.info("round %d: %d task(s) in Label Studio project %d (%d new)",
                 round_, len(task_ids), project, len(fresh))
        tell(*label_studio_instructions(f"{self.url}/projects/{project}/", round_, len(task_ids)))
        return task_ids

    # ----------------------------------------------------------------- pulling
    def _report(self, message: str) -> None:
        if message in self._reported:
            return
        self._reported.add(message)
        self.problems.append(message)
        log.warning("%s", message)

    def annotator_of(self, annotation: dict[str, Any]) -> str:
        """The annotator id of an annotation: its author's e-mail (else username, else id)."""
        author = annotation.get("completed_by")
        if isinstance(author, dict):
            name = author.get("email") or author.get("username")
            if name:
                return str(name)
            author = author.get("id")
        if author is None:
            return "label-studio"
        user = int(author)
        if user not in self._users:
            try:
                name = self.api.user_name(user)
            except server_errors() as exc:
                self._report(f"cannot read Label Studio user {user} ({describe(exc)}); "
                             "using its id as the annotator")
                name = None
            self._users[user] = name or f"label-studio-user-{user}"
        return self._users[user]

    def pull(
        self,
        open_tasks: dict[int, _Open | None],
        asked: set[str],
        on_answer: AnswerSink | None,
        accepted: list[Answer],
        answered: set[str],
        seen: set[tuple[int, str]],
    ) -> None:
        """One poll: take new annotations of the open tasks; drop tasks deleted meanwhile.

        ``open_tasks`` maps task ids to their state, None for a task not read yet.
        """
        assert self.project_id is not None and self.schema is not None
        tasks = {int(t["id"]): t for t in self.api.tasks(self.project_id, list(open_tasks))}
        for tid in [t for t in open_tasks if t not in tasks]:
            gone = open_tasks.pop(tid)
            self.deleted.append(tid)
            log.info("task %d (item %r) was deleted in Label Studio; the item stays unanswered",
                     tid, None if gone is None else gone.item_id)
        for tid, task in sorted(tasks.items()):
            if tid not in open_tasks:
                continue
            state = open_tasks[tid]
            if state is None:
                entry = bookkeeping(task)
                if entry is None:  # alloop's meta was removed: not ours to read any more
                    open_tasks.pop(tid)
                    continue
                state = open_tasks[tid] = _Open(tid, entry["item_id"], dict(task.get("meta") or {}),
                                                entry["taken"])
            changed = False
            annotations = sorted(task.get("annotations") or [], key=lambda a: int(a.get("id", 0)))
            for annotation in annotations:
                aid = str(annotation.get("id"))
                mark = fingerprint(annotation)
                if state.taken.get(aid) == mark or (tid, aid + mark) in seen:
                    continue
                seen.add((tid, aid + mark))
                if state.item_id not in asked:
                    continue
                try:
                    parsed = read_annotation(annotation, self.schema, self.parser)
                except AnswerError as exc:
                    self._report(f"task {tid} (item {state.item_id!r}), annotation {aid}: {exc}")
                    continue
                answer = Answer(
                    state.item_id, parsed.label, self.annotator_of(annotation), parsed.kind, 1.0,
                    {"label_studio_task": tid, "label_studio_annotation": int(aid)},
                )
                problem = on_answer(answer) if on_answer is not None else None
                if problem:
                    self._report(f"task {tid} (item {state.item_id!r}), annotation {aid}: "
                                 f"{problem}")
                    continue
                state.taken[aid] = mark
                changed = True
                accepted.append(answer)
                answered.add(state.item_id)
            if changed:  # remember what was taken, in Label Studio itself
                meta = dict(task.get("meta") or state.meta)
                entry = dict(meta.get(META_KEY) or {})
                entry["taken"] = dict(state.taken)
                meta[META_KEY] = entry
                state.meta = meta
                self.api.update_task(tid, meta=meta)

    # ----------------------------------------------------------------- asking
    def _ask_people(self, queries: list[Query], on_answer: AnswerSink | None) -> list[Answer]:
        """Push the batch, then take annotations as they are submitted.

        Returns once ``min_share`` of the items still in Label Studio have an answer, at the
        timeout, or on :meth:`cancel`; unanswered items stay open there and are taken if the
        loop asks again.
        """
        asked = {q.item_id for q in queries}
        accepted: list[Answer] = []
        answered: set[str] = set()
        seen: set[tuple[int, str]] = set()
        deadline = self._deadline()
        errors = server_errors()
        try:
            open_tasks: dict[int, _Open | None] = dict.fromkeys(self.push(queries))
            pending = {q.item_id for q in queries}  # items whose tasks were not read yet
            while True:
                try:
                    self.pull(open_tasks, asked, on_answer, accepted, answered, seen)
                except errors as exc:  # a restart or a hiccup: try again next poll
                    self._report(f"Label Studio at {self.url} did not answer a poll "
                                 f"({describe(exc)}); retrying")
                if all(state is not None for state in open_tasks.values()):
                    pending = set()
                live = {s.item_id for s in open_tasks.values() if s is not None} | answered | pending
                if len(answered) >= self.needed(len(live & asked)) or not self._wait_poll(deadline):
                    break
        except KeyboardInterrupt:
            self.quit_requested = True
        return accepted


def _as_choice(value: Any, parser: AnswerParser) -> Any:
    """A prediction as one of the classes (numpy scalars and ``3.0`` for ``3`` included)."""
    try:
        return parser.parse_value(value).label
    except AnswerError:
        return None
