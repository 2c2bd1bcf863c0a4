"""The active-learning loop: fit → score → select → ask → store → evaluate → track.

Round 0 labels the initial set; each later round scores the unlabeled pool with the model of the
previous round, asks the oracle for a batch, stores every answer, refits and evaluates. The
label store is the source of truth: a round is marked complete in it after its answers are
committed, and ``run(resume=True)`` continues after the last complete round, re-using answers
a crashed round had already received. Every random choice of round ``r`` draws from a generator
keyed by ``(seed, r)``, so a resumed run retraces the uninterrupted one exactly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alloop.data.pool import Pool, take_rows, validate_features
from alloop.engine.select import select_batch
from alloop.metrics import LOWER_IS_BETTER, check_metrics, default_metric, evaluate
from alloop.store.label_store import LabelStore
from alloop.tracking.base import NullTracker, RoundReport, Tracker
from oracles.annotators import accepts_on_answer
from oracles.base import Answer, Oracle, Query
from strategies.base import Strategy, check_compatible
from strategies.registry import get as get_strategy

#: a hook that chooses the regularity s and returns a fitted model (automatic regularity).
RegularityHook = Callable[..., Any]


class InvalidAnswerError(ValueError):
    """An oracle answered with a label outside the known classes (valid answers were kept)."""


class StoreNotEmptyError(RuntimeError):
    """A fresh run was started on a label store that already holds answers."""


#: the config key behind each part of the run's fingerprint, for the resume message.
_FINGERPRINT_KEYS = {
    "seed": "seed", "strategy": "strategy.name", "pool": "data (the pool's shape)",
    "ids": "data (which items are in the pool)", "model": "model",
    "batch_size": "loop.batch_size", "batch_rule": "strategy.batch",
}


def describe_fingerprint_change(stored: dict[str, Any], now: dict[str, Any], store: str) -> str:
    """Why a run cannot resume on ``store``: each setting that changed, then what to do."""
    lines = [f"cannot resume: the label store {store} was written by a run with other settings:"]
    keys = [k for k in _FINGERPRINT_KEYS if k in stored or k in now]
    for key in keys + sorted((set(stored) | set(now)) - set(keys)):
        if stored.get(key) != now.get(key):
            was, is_ = stored.get(key), now.get(key)
            if key == "ids":  # a hash: its value says nothing to a person
                was, is_ = "other items", "these items"
            lines.append(f"  {_FINGERPRINT_KEYS.get(key, key)}: {was!r} in the store, {is_!r} now")
    lines.append(
        "Put those settings back to continue it, or start over: alloop run CONFIG --fresh "
        f"(sets {store} aside under a timestamped name), or give this run its own store.path"
    )
    return "\n".join(lines)


@dataclass
class LoopResult:
    """What a finished (or stopped) loop returns."""

    curve: pd.DataFrame
    model: Any
    pool: Pool
    stop_reason: str
    run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _finite_number(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _changed_share(current: np.ndarray, previous: np.ndarray, task: str) -> float:
    """Share of evaluation predictions that changed (regression: by more than 1e-3 std)."""
    if task == "regression":
        scale = float(np.std(current)) or 1.0
        return float(np.mean(np.abs(current - previous) > 1e-3 * scale))
    return float(np.mean(current != previous))


def _as_loop_model(model: Any, strategy: Strategy, classes: Any) -> Any:
    """A scikit-learn estimator or a modAL learner, as a model the loop can use (``as_model``).

    A modAL learner gives its estimator (the loop keeps the labels); a gradient strategy gets
    ``LogisticRegression`` / ``Ridge`` as their GLM.
    """
    import sys

    from alloop.models.sklearn_adapter import as_model

    modal = sys.modules.get("modAL.models.base")  # not imported: it cannot be a modAL learner
    if modal is not None and isinstance(model, modal.BaseLearner):
        model = model.estimator
    return as_model(model, differentiable="gradients" in strategy.needs,
                    classes=None if classes is None else list(classes))


def _rng(seed: int, round_: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, round_, stream])


def _fold(item_id: str) -> int:
    """The item's hold-out fold (0-4) by id hash: fold 0 is held out as validation data."""
    return int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % 5


class ActiveLoop:
    """Pool-based active learning with durable labels and per-round tracking.

    Parameters
    ----------
    pool : Pool
        Candidates (features and stable ids).
    model : alloop model
        A template; each round fits ``model.clone()`` on the labels so far.
    strategy : Strategy or str
        A strategy object or a registry name (``alloop strategies`` lists them).
    oracle : Oracle
        Answers queries (may answer only some).
    X_test, y_test : optional
        Held-out data for the learning curve.
    X_val, y_val : optional
        Validation data for strategies and automatic regularity that need it; when absent and
        needed, a fifth of the labeled items (chosen by id hash) is held out.
    classes : sequence, optional
        The full label set (classification). Answers outside it are rejected.
    initial : int or sequence of ids
        Size of the random initial set, or the ids to label first.
    batch_size, max_rounds, budget : int
        Items per round; acquisition rounds after round 0; total labels (including initial).
    target : (metric, value), optional
        Stop once the test metric reaches ``value`` (≥, or ≤ for losses and errors).
    stabilize : (patience, tol), optional
        Stop when fewer than ``tol`` of the evaluation predictions changed for ``patience``
        consecutive rounds.
    stop : sequence of stopping rules, optional
        More stopping rules (:mod:`alloop.stopping`, e.g. ``make_rule("kappa-average")``); each
        round logs every rule's statistic as the metric ``stop_<name>`` and the first rule
        that fires ends the loop with its name as the stop reason.
    initial_strategy : {"random", "typiclust", "probcover", "kmeans"}
        How an integer ``initial`` set is chosen: at random, or without labels from the
        features (:mod:`alloop.cold_start`). A random set that misses a class warns.
    relabel : (every, count), optional
        Every ``every`` rounds, send the ``count`` labeled items that flat-validation-minimum
        influence (FVM) flags as most likely mislabeled back to the oracle, with the label FVM
        proposes. The answer is a new row in the store; the old label stays in the history.
        Needs validation data and a differentiable classifier.
    label_rule : {"latest", "majority", "dawid-skene"}
        How an item's label is derived from its answers (several annotators, relabels).
    unanswered : {"reoffer", "release"}
        Items a round asked about but got no answer for (a person quit or timed out) are asked
        again at the start of the next round, or returned to the pool to be scored again.
    scoring : callable, optional
        ``scoring(strategy, model, X_pool, **context) -> scores`` scores the unlabeled pool
        elsewhere (e.g. :class:`alloop.scale.RayScoring`); it must return exactly what
        ``strategy.score(model, X_pool, **context)`` would. In-process when omitted.
    store : LabelStore, optional
        Durable answers (an in-memory store when omitted).
    tracker : Tracker, optional
        E.g. :class:`alloop.tracking.MlflowTracker`.
    seed : int
    progress : bool
        Show a progress bar over rounds.
    metrics : sequence of str, optional
        Test metrics per round: alloop's names or any scikit-learn scorer name (see
        :mod:`alloop.metrics`); default accuracy, macro-F1, log-loss, or RMSE, MAE, R².

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from alloop import ActiveLoop, Pool
    >>> from alloop.models import SoftmaxGLM
    >>> from oracles import SimulatedOracle
    >>> X, y = load_iris(return_X_y=True)
    >>> pool = Pool(X)
    >>> oracle = SimulatedOracle(dict(zip(pool.ids, y)))
    >>> loop = ActiveLoop(pool, SoftmaxGLM(), "random", oracle, X_test=X, y_test=y,
    ...                   classes=[0, 1, 2], initial=6, batch_size=3, max_rounds=2, progress=False)
    >>> result = loop.run()
    >>> result.curve["labels"].tolist()
    [6, 9, 12]
    """

    def __init__(
        self,
        pool: Pool,
        model: Any,
        strategy: Strategy | str,
        oracle: Oracle,
        *,
        X_test: Any = None,
        y_test: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        classes: Sequence[Any] | None = None,
        initial: int | Sequence[Any] = 10,
        batch_size: int = 10,
        max_rounds: int | None = 10,
        budget: int | None = None,
        target: tuple[str, float] | None = None,
        stabilize: tuple[int, float] | None = None,
        stop: Sequence[Any] | None = None,
        initial_strategy: str = "random",
        batch_rule: str | None = None,
        strategy_params: dict[str, Any] | None = None,
        regularity: RegularityHook | None = None,
        relabel: tuple[int, int] | None = None,
        label_rule: str = "latest",
        unanswered: str = "reoffer",
        scoring: Callable[..., np.ndarray] | None = None,
        store: LabelStore | None = None,
        tracker: Tracker | None = None,
        seed: int = 0,
        progress: bool = True,
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: Sequence[str] | None = None,
        round_report: Callable[[Any, Pool], tuple[dict[str, float], dict[str, pd.DataFrame]]]
        | None = None,  # H2 hook: extra per-round metrics and tables (multi-user per-user)
    ) -> None:
        self.pool = pool
        self.strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
        model = _as_loop_model(model, self.strategy, classes)
        if self.strategy.fresh is not None:  # stateful (the portfolio): one instance per run
            self.strategy = self.strategy.fresh(self.strategy.check_options(strategy_params or {}))
            strategy_params = None
        self.model = model
        check_compatible(self.strategy, model)
        self.oracle = oracle
        self.task = getattr(model, "task", "classification")
        self.classes = None if classes is None else np.asarray(sorted(classes))
        if self.task == "classification" and self.classes is None:
            raise ValueError("classification loops need the full label set: pass classes=[...]")
        self.X_test = None if X_test is None else validate_features(X_test, "X_test")
        self.y_test = None if y_test is None else np.asarray(y_test)
        if self.X_test is not None and (self.y_test is None or len(self.y_test) != self.X_test.shape[0]):
            raise ValueError(
                f"X_test has {self.X_test.shape[0]} rows but y_test has "
                f"{None if self.y_test is None else len(self.y_test)} labels"
            )
        self.X_val = None if X_val is None else validate_features(X_val, "X_val")
        self.y_val = None if y_val is None else np.asarray(y_val)
        n = len(pool)
        if isinstance(initial, int | np.integer):
            if not 1 <= initial <= n:
                raise ValueError(f"initial = {initial} must be between 1 and the pool size {n}")
        else:
            pool.index_of(initial)  # unknown ids raise here, naming them
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        if batch_size > n:
            raise ValueError(
                f"batch_size = {batch_size} is larger than the pool ({n} items); lower batch_size"
            )
        if budget is not None and budget < (initial if isinstance(initial, int) else len(initial)):
            raise ValueError(f"budget = {budget} is smaller than the initial set")
        self.initial = initial
        self.batch_size = int(batch_size)
        self.max_rounds = max_rounds
        self.budget = budget
        self.target = target
        self.stabilize = stabilize
        self.stop_rules = list(stop or ())
        from alloop.cold_start import check_initial_strategy

        self.initial_strategy = check_initial_strategy(initial_strategy)
        self.batch_rule = batch_rule or self.strategy.batch
        # unknown options, bad values and context keys (rng, X_val, ...) fail here, not in round 1
        self.strategy_params = self.strategy.check_options(strategy_params or {})
        self.regularity = regularity
        if label_rule not in ("latest", "majority", "dawid-skene"):
            raise ValueError(
                f"label_rule must be 'latest', 'majority' or 'dawid-skene'; got {label_rule!r}"
            )
        if unanswered not in ("reoffer", "release"):
            raise ValueError(f"unanswered must be 'reoffer' or 'release'; got {unanswered!r}")
        if relabel is not None and (len(relabel) != 2 or min(relabel) < 1):
            raise ValueError(f"relabel must be (every, count) with positive integers; got {relabel!r}")
        self.relabel = relabel
        self.label_rule = label_rule
        self.unanswered = unanswered
        self.scoring = scoring
        self.store = store if store is not None else LabelStore(":memory:")
        self.tracker = tracker if tracker is not None else NullTracker()
        self.seed = int(seed)
        self.progress = progress
        self.run_name = run_name or f"{self.strategy.name}-seed{self.seed}"
        self.params = params or {}
        self.round_report = round_report  # H2 hook
        # unknown names and probability metrics on a model without probabilities fail here
        self.metrics = check_metrics(metrics, model)
        headline = default_metric(self.task)
        self.metric = headline if headline in self.metrics else self.metrics[0]
        if target is not None and X_test is not None and target[0] not in self.metrics:
            raise ValueError(
                f"target metric {target[0]!r} is not computed; add it to the metrics "
                f"({', '.join(self.metrics)})"
            )
        self._s: float | None = getattr(model, "s", None)
        self._check_validation_need()

    def _check_validation_need(self) -> None:
        """Fail now, before anything is stored, if round 1 would have no validation split.

        Without ``X_val`` the split is the id-hash hold-out of the labeled items; after round 0
        they are the initial set, known already, so its hold-out can be counted here.
        """
        if "validation" not in self.strategy.needs or self.X_val is not None:
            return
        if isinstance(self.initial, int | np.integer):
            order = _rng(self.seed, 0, 0).permutation(len(self.pool))[: int(self.initial)]
            ids = self.pool.ids[order].tolist()
        else:
            ids = [str(i) for i in self.initial]
        held = sum(_fold(i) == 0 for i in ids)
        if held < self.MIN_HOLDOUT or len(ids) - held < 2:
            raise ValueError(
                f"strategy {self.strategy.name!r} needs a validation split: set "
                "data.validation_size > 0 in the config (X_val=, y_val= in Python), or label a "
                f"larger initial set (loop.initial): the id-hash hold-out of the {len(ids)} "
                f"initial items has {held}, it needs {self.MIN_HOLDOUT}"
            )

    # ----------------------------------------------------------------- helpers
    def _eval_features(self) -> Any:
        return self.X_test if self.X_test is not None else self.pool.X

    def _validation(self) -> tuple[Any, Any, np.ndarray]:
        """(X_val, y_val, training mask over labeled items)."""
        labeled = self.pool.labeled_indices()
        if self.X_val is not None:
            return self.X_val, self.y_val, np.ones(len(labeled), dtype=bool)
        ids = self.pool.ids[labeled]
        fold = np.array([_fold(i) for i in ids])
        hold = fold == 0
        X_l, y_l = self.pool.labeled_data()
        too_few = hold.sum() < self.MIN_HOLDOUT or (~hold).sum() < 2
        if too_few or (self.task == "classification" and len(set(y_l[hold].tolist())) < 2):
            return None, None, np.ones(len(labeled), dtype=bool)
        return take_rows(X_l, np.flatnonzero(hold)), y_l[hold], ~hold

    def _fit(self, search: bool = True) -> Any:
        X, y = self.pool.labeled_data()
        kwargs = {"classes": self.classes} if self.task == "classification" else {}
        if self.regularity is not None and search:
            X_val, y_val, train = self._validation()
            if X_val is not None:
                model, s = self.regularity(
                    self.model, take_rows(X, np.flatnonzero(train)), y[train], X_val, y_val,
                    s0=self._s, **kwargs,
                )
                from alloop.regularity.auto import fit_selected

                final = fit_selected(self.model, model, s, X, y, **kwargs)  # same s (or e^s σ²)
                self._s = getattr(final, "s", s)  # H2 hook: s may be a vector (s0, s1)
                return final
        if self._s is not None and hasattr(self.model, "with_s"):
            return self.model.with_s(self._s).clone().fit(X, y, **kwargs)
        return self.model.clone().fit(X, y, **kwargs)

    def _context(self, round_: int) -> dict[str, Any]:
        X_l, y_l = self.pool.labeled_data()
        ctx: dict[str, Any] = {"X_labeled": X_l, "y_labeled": y_l, "rng": _rng(self.seed, round_, 1)}
        if "validation" in self.strategy.needs:
            X_val, y_val, _ = self._validation()
            if X_val is None:
                raise ValueError(
                    f"strategy {self.strategy.name!r} needs a validation split: set "
                    "data.validation_size in the config or label more items first"
                )
            ctx.update(X_val=X_val, y_val=y_val)
        return {**ctx, **self.strategy_params}

    def _check_answers(self, answers: Sequence[Answer], asked: set[str]) -> tuple[list[Answer], list[str]]:
        good, bad = [], []
        for a in answers:
            if a.item_id not in asked:
                bad.append(f"item {a.item_id!r} was not asked this round")
            elif a.kind == "label" and self.classes is not None and a.label not in set(self.classes.tolist()):
                bad.append(f"item {a.item_id!r}: label {a.label!r} is not one of {self.classes.tolist()!r}")
            elif a.kind == "label" and self.task == "regression" and not _finite_number(a.label):
                bad.append(f"item {a.item_id!r}: label {a.label!r} is not a finite number")
            else:
                good.append(a)
        return good, bad

    def _stop_reason(self, round_: int, curve: list[dict[str, Any]]) -> str | None:
        n_labeled = int(self.pool.labeled.sum())
        if self.max_rounds is not None and round_ > self.max_rounds:
            return "max_rounds"
        if self.budget is not None and n_labeled >= self.budget:
            return "budget"
        if not len(self.pool.unlabeled_indices()):
            return "pool_exhausted"
        if self.target is not None and curve:
            name, value = self.target
            last = curve[-1].get(name)
            if last is not None:
                reached = last <= value if name in LOWER_IS_BETTER else last >= value
                if reached:
                    return "target"
        silent = curve[-self.SILENT_ROUNDS:]
        if len(curve) > self.SILENT_ROUNDS and all(row.get("answered", 1) == 0 for row in silent):
            return "no_answers"
        if self.stabilize is not None:
            patience, tol = self.stabilize
            changed = [row.get("changed") for row in curve[-patience:]]
            if len(changed) == patience and all(c is not None and c <= tol for c in changed):
                return "stable"
        if self.stop_rules:
            from alloop.stopping import first_reached

            return first_reached(self.stop_rules, curve)
        return None

    # ----------------------------------------------------------------- the loop
    def run(self, resume: bool = False) -> LoopResult:
        """Run rounds until a stop rule fires; ``resume=True`` continues a stored run.

        The loop holds the store's writer lease while it runs (a second writer is refused with
        :class:`~alloop.store.StoreLeaseError`), and a resumed store must pass its hash chain
        (:class:`~alloop.store.ChainBrokenError`) before anything is trained on it.
        """
        self.store.take_lease()
        try:
            if resume:
                self.store.require_intact()
            return self._run(resume)
        finally:
            self.store.release_lease()

    def _run(self, resume: bool) -> LoopResult:
        store = self.store
        done = store.completed_rounds()
        if not resume and len(store):
            raise StoreNotEmptyError(
                f"label store {store.path} already holds {len(store)} answers; continue it with "
                "alloop run CONFIG --resume, start over with alloop run CONFIG --fresh (the old "
                "store is kept under a timestamped name), or set a new store.path"
            )
        fingerprint = {
            "seed": self.seed,
            "strategy": self.strategy.name,
            "pool": list(self.pool.X.shape),
            "ids": hashlib.sha1("\0".join(self.pool.ids.tolist()).encode()).hexdigest(),
            "model": repr(self.model),
            "batch_size": self.batch_size,
            "batch_rule": self.batch_rule if isinstance(self.batch_rule, str)
            else repr(self.batch_rule),  # H2 hook: a rule object (alloop.multiuser.UserQuota)
        }
        stored = store.get_meta("fingerprint")
        if resume and stored is not None and stored != fingerprint:
            raise ValueError(describe_fingerprint_change(stored, fingerprint, store.path))
        store.set_meta("fingerprint", fingerprint)
        run_id = self.tracker.start(
            self.run_name, self.params, store.get_meta("run_id") if resume else None
        )
        if run_id is not None:
            store.set_meta("run_id", run_id)

        last = max(done) if done else -1
        self.pool.set_labels(store.current_labels(max_round=last, rule=self.label_rule))
        curve = [{"round": r, "labels": d["n_labeled"], **d["metrics"]} for r, d in sorted(done.items())]
        logged = self.tracker.logged_rounds()
        for r in sorted(set(done) - logged):  # finished in the store, not in the tracker
            self.tracker.log_round(RoundReport(r, done[r]["n_labeled"], done[r]["metrics"], self._queries_frame(r)))
        model = None
        if last >= 0:
            # Rebuild the last finished round's model exactly as that round ended: at its stored
            # s, without searching s again (a search warm-started elsewhere lands 1e-13 away).
            from alloop.models.s_vector import s_from_metrics  # H2 hook: a vector s

            self._s = s_from_metrics(curve[-1], self._s)
            model = self._fit(search=False)
        previous = model.predict(self._eval_features()) if model is not None else None

        round_ = last + 1
        try:
            stop, model = self._rounds(round_, curve, model, previous)
        except BaseException:
            self.tracker.finish(pd.DataFrame(curve), self.metric, None, status="FAILED")
            self._remember_late_run_id(run_id)
            raise
        frame = pd.DataFrame(curve)
        store.set_meta("stop_reason", stop)
        self.tracker.finish(frame, self.metric, model)
        run_id = self._remember_late_run_id(run_id)
        return LoopResult(frame, model, self.pool, stop, run_id, curve)

    def _remember_late_run_id(self, run_id: str | None) -> str | None:
        """A tracker that was unreachable at start creates its run later: keep that id for --resume."""
        late = getattr(self.tracker, "run_id", None)
        if late is not None and late != run_id:
            self.store.set_meta("run_id", late)
            return late
        return run_id

    def _rounds(self, round_: int, curve: list[dict[str, Any]], model: Any, previous: Any) -> tuple[str, Any]:
        """Run rounds from ``round_`` until a stop rule fires; append to ``curve``."""
        from rich.progress import Progress

        stop = None
        total = (self.max_rounds + 1) if self.max_rounds is not None else None
        with Progress(disable=not self.progress, transient=True) as bar:
            task = bar.add_task(f"{self.run_name}", total=total, completed=round_)
            while True:
                stop = self._stop_reason(round_, curve) if round_ > 0 else None
                if stop:
                    break
                outcome = self._round(round_, model, previous)
                if outcome is None:  # the person quit before giving any label
                    stop = "quit"
                    break
                row, model, previous = outcome
                curve.append(row)
                bar.update(task, advance=1, description=f"{self.run_name} {self.metric}="
                           f"{row.get(self.metric, float('nan')):.3f}")
                round_ += 1
                if getattr(self.oracle, "quit_requested", False):
                    stop = "quit"  # resume with --resume; unanswered items stay open
                    break
        return stop, model

    def _queries_frame(self, round_: int) -> pd.DataFrame:
        requested = self.store.requests(round_)
        answers = {a.item_id: a for a in self.store.answers(round=round_)}
        return pd.DataFrame(
            [
                {
                    "item_id": item,
                    "score": score,
                    "label": answers[item].label if item in answers else None,
                    "kind": answers[item].kind if item in answers else "unanswered",
                    "annotator": answers[item].annotator if item in answers else None,
                }
                for item, score in requested
            ],
            columns=["item_id", "score", "label", "kind", "annotator"],
        )

    #: validation items a hash hold-out needs before s is searched on it (else s is kept)
    MIN_HOLDOUT = 10
    #: an unanswered item is offered again at most this many times, then released
    MAX_REOFFERS = 2
    #: stop after this many consecutive rounds in which nobody answered anything
    SILENT_ROUNDS = 3

    def _open_items(self, round_: int) -> list[str]:
        """Items asked before this round that nobody has answered yet (as of its start).

        At most a batch of them, each re-offered at most ``MAX_REOFFERS`` times, so an oracle
        that never answers some items cannot crowd new ones out for good.
        """
        if self.unanswered != "reoffer" or round_ == 0:
            return []
        answered = {a.item_id for a in self.store.answers() if a.round < round_}
        times = {}
        for r in range(round_):
            for item, _ in self.store.requests(r):
                times[item] = times.get(item, 0) + 1
        items = [i for i in self.store.requested_items(round_)
                 if i not in answered and times.get(i, 0) <= self.MAX_REOFFERS]
        return items[: self.batch_size]

    def _declined_items(self, round_: int) -> set[str]:
        """Items not to ask again: skipped or "unsure" and never labeled, or asked
        ``1 + MAX_REOFFERS`` times without any answer."""
        log = [a for a in self.store.answers() if a.round < round_]
        labeled = {a.item_id for a in log if a.kind == "label"}
        answered = {a.item_id for a in log}
        times: dict[str, int] = {}
        for r in range(round_):
            for item, _ in self.store.requests(r):
                times[item] = times.get(item, 0) + 1
        ignored = {i for i, n in times.items() if n > self.MAX_REOFFERS and i not in answered}
        return ({a.item_id for a in log if a.kind != "label"} - labeled) | ignored

    def _select(
        self, round_: int, model: Any, open_items: Sequence[str] = ()
    ) -> tuple[list[str], list[float | None], dict[str, float]]:
        timing: dict[str, float] = {}
        pool = self.pool
        if round_ == 0:
            if isinstance(self.initial, int | np.integer) and self.initial_strategy != "random":
                from alloop.cold_start import initial_positions

                order = initial_positions(
                    pool.X, int(self.initial), self.initial_strategy, _rng(self.seed, 0, 0),
                    None if self.classes is None else len(self.classes),
                )
                ids = pool.ids[np.sort(order)].tolist()
            elif isinstance(self.initial, int | np.integer):
                order = _rng(self.seed, 0, 0).permutation(len(pool))[: int(self.initial)]
                ids = pool.ids[np.sort(order)].tolist()
            else:
                ids = [str(i) for i in self.initial]
            return ids, [None] * len(ids), timing
        unlabeled = pool.unlabeled_indices()
        excluded = set(open_items) | self._declined_items(round_)
        if excluded:
            unlabeled = np.setdiff1d(unlabeled, pool.index_of(sorted(excluded)), assume_unique=True)
        k = min(self.batch_size - len(open_items), len(unlabeled))
        if self.budget is not None:
            k = min(k, self.budget - int(pool.labeled.sum()) - len(open_items))
        if k <= 0 or not len(unlabeled):
            return [], [], timing
        X_unl = pool.features(unlabeled)
        t0 = time.perf_counter()
        context = self._context(round_)
        context["n_instances"] = k  # batch strategies (badge, batchbald, …) pick k jointly
        if self.scoring is None:
            scores = self.strategy.score(model, X_unl, **context)
        else:
            scores = self.scoring(self.strategy, model, X_unl, **context)
        timing["score_seconds"] = time.perf_counter() - t0
        if self.strategy.report is not None:  # e.g. the portfolio's arm and arm probabilities
            timing.update(self.strategy.report())
        t0 = time.perf_counter()
        chosen = select_batch(
            scores, k, self.batch_rule, X_pool=X_unl, X_labeled=pool.labeled_data()[0],
            rng=_rng(self.seed, round_, 2),
        )
        timing["select_seconds"] = time.perf_counter() - t0
        return pool.ids[unlabeled[chosen]].tolist(), scores[chosen].tolist(), timing

    def _stop_statistics(self, round_: int, model: Any, previous_model: Any) -> dict[str, float]:
        """Every stopping rule's statistic after this round's refit (see :mod:`alloop.stopping`)."""
        from alloop.stopping import StopInputs, stop_statistics

        X_val, y_val, _ = self._validation()
        X_l, y_l = self.pool.labeled_data()
        context = {"X_val": X_val, "y_val": y_val, "X_labeled": X_l, "y_labeled": y_l,
                   "rng": _rng(self.seed, round_, 3)}
        inputs = StopInputs(model, previous_model, self.pool.features(self.pool.unlabeled_indices()), context)
        return stop_statistics(self.stop_rules, inputs)

    def _relabel_queries(self, round_: int, model: Any) -> list[Query]:
        """Queries for the labeled items FVM flags as likely mislabeled (with a proposed label)."""
        if self.relabel is None or round_ == 0 or round_ % self.relabel[0] or model is None:
            return []
        from alloop.influence import relabel_proposals, validation_minimum_influence

        X_val, y_val, _ = self._validation()
        index = self.pool.labeled_indices()
        first: dict[str, int] = {}
        for a in self.store.answers(kind="label"):
            first.setdefault(a.item_id, a.round)
        # a request for an item that already had a label when asked was a relabel request
        relabeled = {i for r in range(1, round_) for i, _ in self.store.requests(r)
                     if first.get(i, r) < r}
        X_l, y_l = self.pool.labeled_data()
        try:
            fvm = validation_minimum_influence(model, X_l, y_l, X_val, y_val, flat=True)
            proposals, _ = relabel_proposals(model, fvm.minimum.theta, X_l, X_val, y_val)
        except (ValueError, TypeError) as exc:
            import warnings

            warnings.warn(f"round {round_}: no relabel queries ({exc})", RuntimeWarning, stacklevel=2)
            return []
        scores = fvm.scores.numpy()
        order = [j for j in np.argsort(-scores, kind="stable") if self.pool.ids[index[j]] not in relabeled]
        out = []
        for j in order[: self.relabel[1]]:
            p = index[j]
            out.append(Query(self.pool.ids[p], x=self.pool.features(np.array([p])),
                             raw=None if self.pool.raw is None else self.pool.raw[p],
                             score=float(scores[j]), prediction=y_l[j], round=round_,
                             proposed_label=proposals[j].item() if hasattr(proposals[j], "item") else proposals[j]))
        return out

    def _answered_so_far(self, round_: int) -> tuple[set[str], dict[str, list[str]]]:
        """(items of this round that need no more answers, item → annotators assigned to it
        who have not answered yet), from the store: what a crashed run left."""
        answers = self.store.answers(round=round_)
        by = {(a.item_id, a.annotator) for a in answers}
        pending = {item: missing for item, people in self.store.assignments(round_).items()
                   if (missing := [p for p in people if (item, p) not in by])}
        return {a.item_id for a in answers} - set(pending), pending

    def _round(self, round_: int, model: Any, previous: Any) -> tuple[dict[str, Any], Any, Any] | None:
        store, pool = self.store, self.pool
        open_items = self._open_items(round_)
        new_ids, new_scores, timing = self._select(round_, model, open_items)
        ids = list(open_items) + new_ids
        scores = [None] * len(open_items) + new_scores
        store.record_requests(round_, ids, scores)
        # Answers a crashed run already received for this round are used, not asked again; with
        # several annotators per item, only the recorded assignments still without an answer.
        have, pending = self._answered_so_far(round_)
        positions = pool.index_of(ids)
        prediction = model.predict(pool.features(positions)) if model is not None else [None] * len(ids)
        queries = [
            Query(i, x=pool.features(np.array([p])), raw=None if pool.raw is None else pool.raw[p],
                  score=s, prediction=pred, round=round_)
            for i, p, s, pred in zip(ids, positions, scores, prediction, strict=True)
            if i not in have
        ]
        relabels = [q for q in self._relabel_queries(round_, model) if q.item_id not in have]
        if relabels:
            store.record_requests(round_, [q.item_id for q in relabels], [q.score for q in relabels])
            queries += relabels
        asked = {q.item_id for q in queries}
        committed: set[tuple[str, str, str]] = set()

        def key(a: Answer) -> tuple[str, str, str]:
            return (a.item_id, a.annotator, repr(a.label))

        def commit(answer: Answer) -> str | None:
            """Validate and store one answer the moment it is given; a reason if refused."""
            good, bad = self._check_answers([answer], asked)
            if bad:
                return bad[0]
            store.append(answer, round_)
            committed.add(key(answer))
            return None

        if hasattr(self.oracle, "on_assign"):  # persist who is asked before anyone is
            self.oracle.on_assign = lambda assignment: store.record_assignments(round_, assignment)
            if pending:
                self.oracle.keep_assignment(pending)
        t0 = time.perf_counter()
        if not queries:
            answers = []
        elif accepts_on_answer(self.oracle):
            answers = self.oracle.request(queries, on_answer=commit)
        else:
            answers = self.oracle.request(queries)
        timing["oracle_seconds"] = time.perf_counter() - t0
        late = [a for a in answers if key(a) not in committed]  # oracles without on_answer
        good, bad = self._check_answers(late, asked)
        for answer in good:
            store.append(answer, round_)
        pool.set_labels(store.current_labels(max_round=round_, rule=self.label_rule))
        if getattr(self.oracle, "quit_requested", False) and round_ > 0 and not store.answers(round=round_):
            return None  # quit before answering anything: the round stays open for --resume
        if bad:
            raise InvalidAnswerError(
                "the oracle gave answers that were not stored (the valid ones were): " + "; ".join(bad)
            )
        if not pool.labeled.any():
            if getattr(self.oracle, "quit_requested", False):
                return None
            raise RuntimeError(
                "no labels yet: the oracle answered none of the initial queries (oracle.timeout "
                "ran out?); they stay open: answer them, then alloop run CONFIG --resume"
            )
        if round_ == 0 and self.classes is not None:
            from alloop.cold_start import warn_missing_classes

            warn_missing_classes(pool.labels[pool.labeled], self.classes)
        previous_model = model
        t0 = time.perf_counter()
        model = self._fit()
        timing["fit_seconds"] = time.perf_counter() - t0
        n_labeled = int(pool.labeled.sum())
        metrics: dict[str, float] = {}
        if self.X_test is not None:
            metrics.update(evaluate(model, self.X_test, self.y_test, self.classes, self.metrics))
        current = model.predict(self._eval_features())
        if previous is not None:
            metrics["changed"] = _changed_share(np.asarray(current), np.asarray(previous), self.task)
        if getattr(model, "s", None) is not None:
            from alloop.models.s_vector import s_metrics  # H2 hook: a vector s logs s0, s1

            metrics.update(s_metrics(model.s))
        tables: dict[str, pd.DataFrame] = {}
        if self.round_report is not None:  # H2 hook: per-user metrics and tables
            more, tables = self.round_report(model, pool)
            metrics.update(more)
        if self.stop_rules:
            metrics.update(self._stop_statistics(round_, model, previous_model))
        metrics.update(timing)
        this_round = store.answers(round=round_)
        metrics["answered"] = float(sum(a.kind == "label" for a in this_round))
        metrics["skipped"] = float(sum(a.kind != "label" for a in this_round))
        metrics["open"] = float(len(asked - {a.item_id for a in this_round}))
        if self.relabel is not None:
            metrics["relabeled"] = float(len(relabels))
        everything = store.answers(kind="label")
        if len({a.annotator for a in everything}) > 1:
            from alloop.aggregation import agreement_metrics

            metrics.update(agreement_metrics(everything, dict(zip(pool.ids[pool.labeled],
                                                                  pool.labels[pool.labeled]))))
        store.complete_round(round_, n_labeled, metrics)
        self.tracker.log_round(RoundReport(round_, n_labeled, metrics, self._queries_frame(round_),
                                           tables=tables))  # H2 hook: tables
        return {"round": round_, "labels": n_labeled, **metrics}, model, current
