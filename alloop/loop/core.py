"""The active-learning loop: named stages run one way through each round.

select (score) → ask → commit → fit → evaluate → report. Round 0 labels the initial set; each
later round scores the unlabeled pool with the model of the previous round, asks the oracle for
a batch, stores every answer, refits and evaluates. The label store is the source of truth: a
round is marked complete in it after its answers are committed, and ``run(resume=True)``
continues after the last complete round, re-using answers a crashed round had already received.
:meth:`ActiveLoop.query` and :meth:`ActiveLoop.teach` run the same round in two steps, for
users who drive rounds themselves; the queries are in the store when ``query`` returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alloop.aggregation import aggregate
from alloop.loop import ask as ask_stage
from alloop.loop import memory
from alloop.loop import select as select_stage
from alloop.loop.commit import Committer
from alloop.loop.errors import InvalidAnswerError, StoreNotEmptyError
from alloop.loop.evaluate import answer_metrics, model_metrics
from alloop.loop.fingerprint import describe_fingerprint_change, fingerprint
from alloop.loop.fit import s_from_metrics
from alloop.loop.report import progress, report_round
from alloop.loop.result import LoopResult, Queries
from alloop.loop.score import score, strategy_context
from alloop.loop.setup import Setup
from alloop.loop.validation import STOP, rng
from alloop.stopping import LoopState, StopInputs, stop_statistics
from oracles.base import Answer, Query


@dataclass
class OpenRound:
    """A round whose queries are stored and not all answered yet."""

    round: int
    queries: list[Query]
    asked: set[str]
    relabeled: int = 0
    pending: dict[str, list[str]] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)


class ActiveLoop(Setup):
    """Pool-based active learning with durable labels and per-round tracking.

    The parameters are :class:`alloop.loop.setup.Setup`'s: the pool, a model template, a
    strategy (object or registry name), an oracle, :class:`LoopSettings`, and optionally a
    store, a tracker, test and validation data, the classes and a scoring backend.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from alloop import ActiveLoop, LoopSettings, Pool
    >>> from alloop.models import SoftmaxGLM
    >>> from oracles import SimulatedOracle
    >>> X, y = load_iris(return_X_y=True)
    >>> pool = Pool(X)
    >>> oracle = SimulatedOracle(dict(zip(pool.ids, y)))
    >>> settings = LoopSettings(initial=6, batch_size=3, rounds=2, progress=False)
    >>> loop = ActiveLoop(pool, SoftmaxGLM(), "random", oracle, settings,
    ...                   X_test=X, y_test=y, classes=[0, 1, 2])
    >>> loop.run().curve["labels"].tolist()
    [6, 9, 12]
    """

    # ----------------------------------------------------------------- running
    def run(self, resume: bool = False) -> LoopResult:
        """Run rounds until a stop rule fires; ``resume=True`` continues a stored run.

        The loop holds the store's writer lease while it runs (a second writer is refused with
        :class:`~alloop.store.StoreLeaseError`), and a resumed store must pass its hash chain
        (:class:`~alloop.store.ChainBrokenError`) before anything is trained on it.
        """
        if self.oracle is None:
            raise ValueError(
                "run() needs an oracle to ask; without one, drive the rounds yourself: "
                "queries = loop.query(), then loop.teach(answers)"
            )
        self.store.take_lease()
        try:
            if resume:
                self.store.require_intact()
            elif len(self.store):
                raise StoreNotEmptyError(
                    f"label store {self.store.path} already holds {len(self.store)} answers; "
                    "continue it with alloop run CONFIG --resume, start over with alloop run "
                    "CONFIG --fresh (the old store is kept under a timestamped name), or set a "
                    "new store.path"
                )
            self._restore(resume)
            try:
                stop = self._rounds()
            except BaseException:
                self.tracker.finish(pd.DataFrame(self._curve), self.metric, None, status="FAILED")
                self._remember_late_run_id()
                raise
            return self.finish(stop)
        finally:
            self.store.release_lease()

    def _rounds(self) -> str:
        """Rounds from the next one until a stop rule fires (or the person quits)."""
        total = (self.settings.rounds + 1) if self.settings.rounds is not None else None
        with progress(self.run_name, self.metric, total, self._next, self.settings.progress) as bar:
            while True:
                stop = self.stop_reason()
                if stop:
                    return stop
                open_ = self._open(self._next)
                committer = self._committer(open_)
                answers, seconds = ask_stage.ask(self.oracle, open_.queries, committer.commit,
                                                 self.store, open_.round, open_.pending)
                open_.timing["oracle_seconds"] = seconds
                committer.commit_rest(answers)
                row = self._close(open_, committer.refused)
                if row is None:  # the person quit before giving any label
                    return "quit"
                bar.advance(row)
                if ask_stage.quit_requested(self.oracle):
                    return "quit"  # resume with --resume; unanswered items stay open

    def finish(self, stop: str | None = None) -> LoopResult:
        """End the run: the tracker gets the final curve and model; returns the result so far.

        ``run()`` calls it; after :meth:`query` / :meth:`teach`, call it yourself. The stop
        reason defaults to the one :meth:`query` last met (None if it met none).
        """
        with self._lease():
            frame = pd.DataFrame(self._curve)
            if stop is not None:
                self.store.set_meta("stop_reason", stop)
            else:
                stop = self.store.get_meta("stop_reason")
            self.tracker.finish(frame, self.metric, self._model)
            return LoopResult(frame, self._model, self.pool, stop, self._remember_late_run_id(),
                              self._curve)

    def stop_reason(self) -> str | None:
        """The first stop rule that fires before the next round (None: go on)."""
        if self._next == 0:
            return None
        state = LoopState(self._next, int(self.pool.labeled.sum()),
                          len(self.pool.unlabeled_indices()), self._curve)
        for rule in self.stop_rules:
            if rule(state):
                return rule.name
        return None

    @property
    def run_id(self) -> str | None:
        """The tracked run's id (None before the run starts, or when nothing is tracked)."""
        return self._run_id

    # ----------------------------------------------------------------- ask / tell
    def query(self, n: int | None = None) -> Queries:
        """The next round's queries, stored before they are returned.

        A round already asked and not taught yet (in this process or one that died) gives its
        open queries back, not new ones. ``n`` (default ``settings.batch_size``) is the size of
        a new round; an empty result carries the stop rule's name as ``stop_reason``.
        """
        with self._lease():
            self._ensure_restored()
            round_ = self._next
            if self.store.requests(round_):
                open_ = self._stored_queries(round_)
                if open_:
                    return Queries(round_, tuple(open_))
                # every query was answered before the process died, the round not closed yet
                asked = {i for i, _ in self.store.requests(round_)}
                self._close(self._reopened(round_, asked), [], quit_ok=False)
                round_ = self._next
            stop = self.stop_reason()
            if stop:
                self.store.set_meta("stop_reason", stop)
                return Queries(round_, (), stop)
            self._asked = self._open(round_, n)  # its timings go into teach's round metrics
            return Queries(round_, tuple(self._asked.queries))

    def teach(self, answers: list[Answer]) -> dict[str, Any]:
        """Store the answers to the open queries, then refit, evaluate and log the round.

        Queries left unanswered are asked again next round (``unanswered: reoffer``). Returns
        the round's row of the learning curve; answers to items not asked, or with an unknown
        label, raise :class:`InvalidAnswerError` after the valid ones are stored.
        """
        with self._lease():
            self._ensure_restored()
            round_ = self._next
            requested = [i for i, _ in self.store.requests(round_)]
            if not requested:
                raise ValueError(f"round {round_} has no open queries: call loop.query() first")
            open_ = self._asked
            if open_ is None or open_.round != round_:  # asked by a process that is gone
                open_ = self._reopened(round_, set(requested))
            open_.asked = set(requested)
            self._asked = None
            committer = self._committer(open_)
            committer.commit_rest(answers)
            row = self._close(open_, committer.refused, quit_ok=False)
            assert row is not None
            return row

    # ----------------------------------------------------------------- one round
    def _open(self, round_: int, n: int | None = None) -> OpenRound:
        """Select this round's items, store the requests, build the queries (not yet asked)."""
        store, pool, model = self.store, self.pool, self._model
        batch = self.settings.batch_size if n is None else int(n)
        open_items = select_stage.open_items(store, round_, batch, self.settings.unanswered)
        new_ids, new_scores, timing = self._select(round_, open_items, batch)
        ids = list(open_items) + new_ids
        scores = [None] * len(open_items) + new_scores
        store.record_requests(round_, ids, scores)
        # Answers a crashed run already received for this round are used, not asked again; with
        # several annotators per item, only the recorded assignments still without an answer.
        have, pending = self._answered_so_far(round_)
        queries = [q for q in self._queries(round_, ids, scores) if q.item_id not in have]
        relabels = [q for q in self.relabel.propose(round_, model, pool, store, self._validation)
                    if q.item_id not in have]
        store.record_requests(round_, [q.item_id for q in relabels], [q.score for q in relabels])
        queries += relabels
        return OpenRound(round_, queries, {q.item_id for q in queries}, len(relabels), pending, timing)

    def _reopened(self, round_: int, asked: set[str]) -> OpenRound:
        """A round another process opened: its stored requests, its strategy's stored report."""
        return OpenRound(round_, [], asked, timing=memory.report(self.store, self.strategy, round_))

    def _queries(self, round_: int, ids: list[str], scores: list[Any]) -> list[Query]:
        pool, model = self.pool, self._model
        positions = pool.index_of(ids)
        prediction = model.predict(pool.features(positions)) if model is not None else [None] * len(ids)
        return [
            Query(i, x=pool.features(np.array([p])), raw=None if pool.raw is None else pool.raw[p],
                  score=s, prediction=pred, round=round_)
            for i, p, s, pred in zip(ids, positions, scores, prediction, strict=True)
        ]

    def _stored_queries(self, round_: int) -> list[Query]:
        """The stored requests of an open round that have no answer yet, as queries."""
        have, _ = self._answered_so_far(round_)
        rows = [(i, s) for i, s in self.store.requests(round_) if i not in have]
        return self._queries(round_, [i for i, _ in rows], [s for _, s in rows])

    def _select(self, round_: int, open_items: list[str], batch: int
                ) -> tuple[list[str], list[float | None], dict[str, float]]:
        pool, settings = self.pool, self.settings
        if round_ == 0:
            ids = select_stage.initial_ids(pool, settings, None if self.classes is None else len(self.classes))
            return ids, [None] * len(ids), {}
        unlabeled, k = select_stage.candidates(pool, self.store, round_, settings, open_items, batch)
        if k <= 0 or not len(unlabeled):
            return [], [], {}
        X_unl = pool.features(unlabeled)
        X_l, y_l = pool.labeled_data()
        validation = self._validation() if "validation" in self.strategy.needs else None
        context = strategy_context(self.strategy, self.strategy_params, X_l, y_l, validation,
                                   settings.seed, round_)
        context["n_instances"] = k  # batch strategies (badge, batchbald, …) pick k jointly
        memory.restore(self.store, self.strategy, round_ - 1)  # the store's state, not this process's
        scores, timing = score(self.strategy, self._model, X_unl, context, self.scoring)
        memory.save(self.store, self.strategy, round_)  # before the requests (see memory)
        t0 = time.perf_counter()
        known = self.strategy.labeled_distance(scores, X_l)  # the core-set's scores
        if known is None and self.batch_rule == "kcenter":
            known = self.center_distances.get(pool, unlabeled, X_unl)
        chosen = select_stage.pick(scores, k, self.batch_rule, X_unl, X_l, settings.seed, round_,
                                   known)
        timing["select_seconds"] = time.perf_counter() - t0
        return pool.ids[unlabeled[chosen]].tolist(), scores[chosen].tolist(), timing

    def _answered_so_far(self, round_: int) -> tuple[set[str], dict[str, list[str]]]:
        """(items of this round that need no more answers, item → annotators assigned to it
        who have not answered yet), from the store: what a crashed run left."""
        answers = self.store.answers(round=round_)
        by = {(a.item_id, a.annotator) for a in answers}
        pending = {item: missing for item, people in self.store.assignments(round_).items()
                   if (missing := [p for p in people if (item, p) not in by])}
        return {a.item_id for a in answers} - set(pending), pending

    def _committer(self, open_: OpenRound) -> Committer:
        return Committer(self.store, open_.round, open_.asked, self.classes, self.task)

    def _close(self, open_: OpenRound, refused: list[str], quit_ok: bool = True) -> dict[str, Any] | None:
        """After the answers: labels, refit, metrics, the round marked complete and logged."""
        store, pool, round_ = self.store, self.pool, open_.round
        pool.set_labels(aggregate(store.answers(max_round=round_), self.settings.label_rule))
        quit_ = quit_ok and ask_stage.quit_requested(self.oracle)
        if quit_ and round_ > 0 and not store.answers(round=round_):
            return None  # quit before answering anything: the round stays open for --resume
        if refused:
            raise InvalidAnswerError(
                "the oracle gave answers that were not stored (the valid ones were): " + "; ".join(refused)
            )
        if not pool.labeled.any():
            if quit_:
                return None
            raise RuntimeError(
                "no labels yet: the oracle answered none of the initial queries (oracle.timeout "
                "ran out?); they stay open: answer them, then alloop run CONFIG --resume"
            )
        if round_ == 0 and self.classes is not None:
            from alloop.cold_start import warn_missing_classes

            warn_missing_classes(pool.labels[pool.labeled], self.classes)
        previous_model = self._model
        t0 = time.perf_counter()
        model = self.fit()
        timing = {**open_.timing, "fit_seconds": time.perf_counter() - t0}
        current = model.predict(self._eval_features())
        metrics = model_metrics(model, self.X_test, self.y_test, self.classes, self.metrics,
                                current, self._previous, self.task)
        if self.settings.stop:
            metrics.update(self._stop_statistics(round_, model, previous_model))
        metrics.update(timing)
        metrics.update(answer_metrics(store, round_, open_.asked, pool))
        if self.settings.relabel is not None:
            metrics["relabeled"] = float(open_.relabeled)
        tables: dict[str, pd.DataFrame] = {}
        if self.round_report is not None:  # e.g. per-user metrics and the users table
            more, tables = self.round_report(model, pool)
            metrics.update(more)
        n_labeled = int(pool.labeled.sum())
        store.complete_round(round_, n_labeled, metrics)
        report_round(self.tracker, store, round_, n_labeled, metrics, tables)
        row = {"round": round_, "labels": n_labeled, **metrics}
        self._curve.append(row)
        self._model, self._previous, self._next = model, current, round_ + 1
        return row

    def _stop_statistics(self, round_: int, model: Any, previous_model: Any) -> dict[str, float]:
        """Every stopping rule's statistic after this round's refit (see :mod:`alloop.stopping`)."""
        X_val, y_val, _ = self._validation()
        X_l, y_l = self.pool.labeled_data()
        context = {"X_val": X_val, "y_val": y_val, "X_labeled": X_l, "y_labeled": y_l,
                   "rng": rng(self.settings.seed, round_, STOP)}
        X_unl = self.pool.features(self.pool.unlabeled_indices())
        return stop_statistics(self.settings.stop, StopInputs(model, previous_model, X_unl, context, _registry_scores))

    # ----------------------------------------------------------------- the store's state
    def _restore(self, resume: bool) -> None:
        """Check the fingerprint, open the tracker run and rebuild the last finished round."""
        store = self.store
        now = fingerprint(self.settings.seed, self.strategy.name, self.pool, self.model,
                          self.settings.batch_size, self.batch_rule)
        stored = store.get_meta("fingerprint")
        if resume and stored is not None and stored != now:
            raise ValueError(describe_fingerprint_change(stored, now, store.path))
        store.set_meta("fingerprint", now)
        self._run_id = self.tracker.start(self.run_name, self.params,
                                          store.get_meta("run_id") if resume else None)
        if self._run_id is not None:
            store.set_meta("run_id", self._run_id)
        done = store.completed_rounds()
        last = max(done) if done else -1
        self.pool.set_labels(aggregate(store.answers(max_round=last), self.settings.label_rule))
        self._curve = [{"round": r, "labels": d["n_labeled"], **d["metrics"]} for r, d in sorted(done.items())]
        logged = self.tracker.logged_rounds()
        for r in sorted(set(done) - logged):  # finished in the store, not in the tracker
            report_round(self.tracker, store, r, done[r]["n_labeled"], done[r]["metrics"])
        self._model = None
        if last >= 0:
            # Rebuild the last finished round's model exactly as that round ended: at its stored
            # s, without searching s again (a search warm-started elsewhere lands 1e-13 away).
            self._fit_stage.s = s_from_metrics(self._curve[-1], self._fit_stage.s)
            self._model = self.fit(search=False)
        self._previous = self._model.predict(self._eval_features()) if self._model is not None else None
        self._next = last + 1
        self._restored = True

    def _ensure_restored(self) -> None:
        if not self._restored:
            self.store.require_intact()
            self._restore(resume=True)

    def _remember_late_run_id(self) -> str | None:
        """A tracker that was unreachable at start creates its run later: keep that id for --resume."""
        late = self.tracker.run_id
        if late is not None and late != self._run_id:
            self.store.set_meta("run_id", late)
            self._run_id = late
        return self._run_id


def _registry_scores(name: str, model: Any, X: Any, **context: Any) -> np.ndarray:
    """A registered strategy's scores (what ``ssi-quiet`` measures)."""
    import strategies

    return strategies.get(name).score(model, X, **context)
