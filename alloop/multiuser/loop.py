"""The multi-user active loop: (user, item) candidates, one hierarchical model, the label store.

Each round the loop fits :class:`alloop.multiuser.HierarchicalGLM` on every label in the
store, chooses (s_0, s_1) on the validation split by hypergradient (warm-started from the last
round), scores the candidates not yet asked with that user's θ_u and tangents (random, SLD, STI
or SSI), takes a batch globally or with a per-user quota, persists the requests, asks the
oracle for that user's label, commits each answer, and reports. The pieces are the project's:

* :class:`alloop.store.LabelStore` — the source of truth. Candidate ids name the user
  ("u17/m123"); with ``user_from="annotator"`` the user is the answer's annotator instead (an
  annotator whose own labels are modelled, docs/people.md). Labels are rebuilt from the store
  every round, and on resume after a crash: a round the store has not marked complete is run
  again with the answers it already holds, asking only for the rest.
* any :class:`oracles.base.Oracle` (e.g. :class:`oracles.simulated.SimulatedOracle` with truth
  keyed by candidate id); :class:`UserRoutedOracle` sends each query to its user's own oracle.
* an MLflow tracker (:class:`alloop.tracking.mlflow_tracker.MlflowTracker`): a parent run, one
  nested run per round with the aggregated metrics (``<metric>_mean_users``,
  ``<metric>_median_users``, ``users_with_labels``, ``labels_min/median/max``, ``s0``, ``s1``,
  ``validation_loss``), its queries and a per-user table ``users.csv`` (labels and test metric
  per user); the learning curve and the (s_0, s_1) path (``curve.s0``, ``curve.s1``) on the
  parent run at the end.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alloop.multiuser.model import HierarchicalGLM
from alloop.multiuser.queries import select_candidates, sld_scores, sti_scores
from alloop.multiuser.regularity import select_hyperparameters, validation_hypergradient
from alloop.multiuser.ssi import ssi_scores
from alloop.store.label_store import LabelStore
from alloop.tracking.base import NullTracker, RoundReport, Tracker
from oracles.base import Answer, AnswerSink, Oracle, Query, request_answers

__all__ = ["STRATEGIES", "MultiUserLoop", "MultiUserPool", "MultiUserResult", "UserRoutedOracle"]

STRATEGIES = ("random", "sld", "sti", "ssi")


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class MultiUserPool:
    """Candidates: feature rows, the user each is offered to, and their ids.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    users : numpy.ndarray of int, shape (n,)
        User index in [0, len(user_names)).
    ids : sequence of str
        Unique candidate ids, e.g. ``"u17/m123"`` (see :meth:`from_items`).
    user_names : sequence of str
        The users' names: annotator ids when ``user_from="annotator"``.
    """

    X: np.ndarray
    users: np.ndarray
    ids: np.ndarray
    user_names: tuple[str, ...]

    def __post_init__(self) -> None:
        X, users = np.asarray(self.X, dtype=np.float64), np.asarray(self.users)
        ids = np.asarray([str(i) for i in self.ids], dtype=object)
        if X.ndim != 2 or users.shape != (X.shape[0],) or ids.shape != (X.shape[0],):
            raise ValueError(
                f"need X (n, d), users (n,) and ids (n,); got {X.shape}, {users.shape}, {ids.shape}"
            )
        if len(set(ids.tolist())) != ids.size:
            raise ValueError("candidate ids must be unique")
        if users.size and (users.min() < 0 or users.max() >= len(self.user_names)):
            raise ValueError(
                f"users must index user_names (0..{len(self.user_names) - 1}); "
                f"got range [{users.min()}, {users.max()}]"
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "users", users.astype(np.int64))
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "user_names", tuple(str(u) for u in self.user_names))
        object.__setattr__(self, "_position", {c: i for i, c in enumerate(ids.tolist())})
        object.__setattr__(self, "_user", {u: i for i, u in enumerate(self.user_names)})

    @classmethod
    def from_items(
        cls, X: Any, users: Any, items: Sequence[Any], user_names: Sequence[str]
    ) -> MultiUserPool:
        """Ids ``"{user_name}/{item}"`` from each row's user and item name."""
        users = np.asarray(users)
        ids = [f"{user_names[u]}/{i}" for u, i in zip(users.tolist(), items, strict=True)]
        return cls(np.asarray(X), users, np.asarray(ids, dtype=object), tuple(user_names))

    @property
    def n_users(self) -> int:
        return len(self.user_names)

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        try:
            return np.array([self._position[str(i)] for i in ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"candidate {err.args[0]!r} is not in the pool") from None

    def user_index(self, name: str) -> int:
        try:
            return self._user[str(name)]
        except KeyError:
            raise KeyError(
                f"annotator {name!r} is not one of the pool's users; known users: "
                f"{', '.join(self.user_names[:10])}{' …' if self.n_users > 10 else ''}"
            ) from None


class UserRoutedOracle:
    """Sends each candidate's query to the oracle of the user it names; answers carry that user.

    For annotators-as-users: ``oracles`` maps each user name (an annotator id) to their own
    oracle, and a candidate ``"u17/m123"`` goes to ``oracles["u17"]``. The returned answers
    are stamped ``annotator = user``.
    """

    def __init__(self, pool: MultiUserPool, oracles: Mapping[str, Oracle]) -> None:
        missing = sorted(set(pool.user_names) - set(oracles))
        if missing:
            raise ValueError(f"no oracle for users {missing[:10]}; give one per user name")
        self.pool, self.oracles = pool, dict(oracles)

    def request(
        self, queries: Sequence[Query], on_answer: AnswerSink | None = None
    ) -> list[Answer]:
        groups: dict[str, list[Query]] = {}
        for q in queries:
            user = self.pool.user_names[self.pool.users[self.pool.index_of([q.item_id])[0]]]
            groups.setdefault(user, []).append(q)
        out = []
        for user, batch in groups.items():
            for answer in self.oracles[user].request(batch):
                stamped = Answer(answer.item_id, answer.label, user, answer.kind, answer.cost)
                if on_answer is None or on_answer(stamped) is None:
                    out.append(stamped)
        return out


@dataclass
class MultiUserResult:
    """What :meth:`MultiUserLoop.run` returns."""

    curve: pd.DataFrame
    model: HierarchicalGLM | None
    users: pd.DataFrame
    run_id: str | None


# --------------------------------------------------------------------------- the loop
class MultiUserLoop:
    """Active learning over (user, item) candidates with a hierarchical model.

    Parameters
    ----------
    pool : MultiUserPool
    oracle : Oracle
        Answers queries whose ``item_id`` is a candidate id.
    store : LabelStore
    likelihood : {"gaussian", "bernoulli", "categorical"}
    strategy : {"random", "sld", "sti", "ssi"}
    batch_size : int
        Queries per round after the first.
    quota : int, optional
        At most this many queries per user per round; ``None`` selects globally.
    initial : sequence of str
        Candidate ids asked in round 0 (e.g. one per user).
    validation, test : (X, y, users), optional
        The validation split chooses (s_0, s_1) and defines SSI; the test split gives the
        per-user metric (RMSE for regression, accuracy for classification).
    s_init : (float, float)
        (s_0, s_1) of the first fit, and the search's first start.
    auto_regularity : bool
        Choose (s_0, s_1) every round by hypergradient (needs ``validation``).
    bounds : ((lo0, hi0), (lo1, hi1))
    classes : sequence, optional
        Every class (classification), declared up front.
    ssi_hyperparameters : "s0", "s1" or both
        Which selected hyperparameters SSI measures the influence on (default both).
    user_from : {"candidate", "annotator"}
        Whose label a row is: the candidate's user, or the answering annotator (a user name).
    tracker : Tracker, optional
        E.g. :class:`alloop.tracking.mlflow_tracker.MlflowTracker`; default none.
    run_name : str
    seed : int
        Seeds random selection and tie-breaks, per round (a resumed run repeats them).
    """

    def __init__(
        self,
        pool: MultiUserPool,
        oracle: Oracle,
        store: LabelStore,
        *,
        likelihood: str = "gaussian",
        strategy: str = "sld",
        batch_size: int = 10,
        quota: int | None = None,
        initial: Sequence[str] = (),
        validation: tuple[Any, Any, Any] | None = None,
        test: tuple[Any, Any, Any] | None = None,
        s_init: tuple[float, float] = (0.0, 0.0),
        auto_regularity: bool = True,
        bounds: Any = ((-10.0, 10.0), (-10.0, 10.0)),
        classes: Sequence[Any] | None = None,
        ssi_hyperparameters: Sequence[str] | str = ("s0", "s1"),
        user_from: str = "candidate",
        tracker: Tracker | None = None,
        run_name: str | None = None,
        seed: int = 0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if user_from not in ("candidate", "annotator"):
            raise ValueError(f"user_from must be 'candidate' or 'annotator'; got {user_from!r}")
        if (auto_regularity or strategy == "ssi") and validation is None:
            raise ValueError(
                f"{'SSI' if strategy == 'ssi' else 'auto_regularity'} needs a validation split "
                "(X_val, y_val, users_val); pass validation=... or auto_regularity=False"
            )
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        if not initial:
            raise ValueError("give the initial candidate ids (round 0), e.g. one per user")
        pool.index_of(initial)  # every initial id is a candidate
        self.pool, self.oracle, self.store = pool, oracle, store
        self.likelihood, self.strategy = likelihood, strategy
        self.batch_size, self.quota = batch_size, quota
        self.initial = [str(i) for i in initial]
        self.validation, self.test = validation, test
        self.s_init = (float(s_init[0]), float(s_init[1]))
        self.auto_regularity, self.bounds = auto_regularity, bounds
        self.classes = None if classes is None else list(classes)
        self.user_from = user_from
        self.ssi_hyperparameters = (
            (ssi_hyperparameters,) if isinstance(ssi_hyperparameters, str)
            else tuple(ssi_hyperparameters)
        )
        self.tracker = tracker if tracker is not None else NullTracker()
        self.run_name = run_name or f"multiuser-{strategy}-seed{seed}"
        self.seed = seed
        self.metric = "rmse" if likelihood == "gaussian" else "accuracy"

    # ------------------------------------------------------------------ labels
    def labeled_rows(self, max_round: int | None = None) -> tuple[np.ndarray, np.ndarray, list]:
        """(candidate positions, users, labels) from the store: each (item, user)'s latest label.

        A later skip or "unsure" from the same annotator withdraws their label, as in
        :func:`alloop.aggregation.latest_label`.
        """
        latest: dict[tuple[str, int], Any] = {}
        for a in self.store.answers():
            if max_round is not None and a.round > max_round:
                continue
            position = self.pool.index_of([a.item_id])[0]
            if self.user_from == "annotator":
                user = self.pool.user_index(a.annotator)
            else:
                user = int(self.pool.users[position])
            key = (a.item_id, user)
            if a.kind == "label":
                latest[key] = a.label
            else:
                latest.pop(key, None)
        keys = list(latest)
        positions = self.pool.index_of([k[0] for k in keys])
        users = np.array([k[1] for k in keys], dtype=np.int64)
        return positions, users, [latest[k] for k in keys]

    # ------------------------------------------------------------------ fitting
    def _fit(self, model: HierarchicalGLM | None, round_: int, search: bool):
        positions, users, labels = self.labeled_rows(max_round=round_)
        if not len(labels):
            raise RuntimeError("no labels yet: the oracle answered none of the initial queries")
        if model is None:
            model = HierarchicalGLM(self.likelihood, *self.s_init)
        model.fit(
            self.pool.X[positions], np.asarray(labels), users, n_users=self.pool.n_users,
            classes=self.classes,
        )
        info = None
        if search and self.auto_regularity:
            model, info = select_hyperparameters(
                model, *self.validation, s_init=(model.s0, model.s1), bounds=self.bounds
            )
        return model, info, len(labels), np.bincount(users, minlength=self.pool.n_users)

    # ------------------------------------------------------------------ scoring
    def _scores(self, model: HierarchicalGLM, positions: np.ndarray, rng) -> np.ndarray:
        X, users = self.pool.X[positions], self.pool.users[positions]
        if self.strategy == "random":
            return rng.random(len(positions))
        if self.strategy == "sld":
            return sld_scores(model, X, users)
        if self.strategy == "sti":
            return sti_scores(model, X, users)
        with warnings.catch_warnings():  # at a search bound SSI floors ∇²V; still a ranking
            warnings.simplefilter("ignore", RuntimeWarning)
            return ssi_scores(
                model, X, users, *self.validation, bounds=self.bounds,
                hyperparameters=self.ssi_hyperparameters,
            )

    def _select(self, round_: int, model: HierarchicalGLM | None) -> tuple[list[str], list]:
        if round_ == 0:
            return list(self.initial), [None] * len(self.initial)
        asked = set(self.store.requested_items(before_round=round_))
        asked |= {a.item_id for a in self.store.answers() if a.round < round_}
        open_ = np.array([i for i, c in enumerate(self.pool.ids.tolist()) if c not in asked])
        if open_.size == 0:
            return [], []
        rng = np.random.default_rng([self.seed, round_])
        scores = self._scores(model, open_, rng)
        chosen = select_candidates(
            scores, self.pool.users[open_], self.batch_size, quota=self.quota, rng=rng
        )
        return self.pool.ids[open_[chosen]].tolist(), scores[chosen].tolist()

    # ------------------------------------------------------------------ metrics
    def user_table(self, model: HierarchicalGLM, counts: np.ndarray) -> pd.DataFrame:
        """One row per user: labels and the test metric (NaN without test rows)."""
        frame = pd.DataFrame({"user": list(self.pool.user_names), "labels": counts})
        if self.test is None:
            return frame
        X, y, users = self.test
        users = np.asarray(users)
        y = np.asarray(y)
        prediction = model.predict(X, users)
        n = np.bincount(users, minlength=self.pool.n_users)
        if self.metric == "rmse":
            err = np.bincount(users, (prediction - y) ** 2, minlength=self.pool.n_users)
        else:
            err = np.bincount(users, (prediction == y).astype(float), minlength=self.pool.n_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = err / n
        frame[self.metric] = np.sqrt(value) if self.metric == "rmse" else value
        frame["n_test"] = n
        return frame

    def _metrics(self, model, info, users: pd.DataFrame) -> dict[str, float]:
        counts = users["labels"].to_numpy()
        out = {
            "users_with_labels": float((counts > 0).sum()),
            "labels_min": float(counts.min()),
            "labels_median": float(np.median(counts)),
            "labels_max": float(counts.max()),
            "labels_per_user": float(counts.mean()),
            "s0": model.s0,
            "s1": model.s1,
        }
        if self.metric in users:
            values = users[self.metric].to_numpy(dtype=float)
            out[f"{self.metric}_mean_users"] = float(np.nanmean(values))
            out[f"{self.metric}_median_users"] = float(np.nanmedian(values))
        if info is not None:
            out["validation_loss"] = info.value
            out["hyper_evaluations"] = float(info.iterations)
        elif self.validation is not None:
            out["validation_loss"] = validation_hypergradient(model, *self.validation)[0]
        return out

    def _queries_frame(self, round_: int) -> pd.DataFrame:
        answers = {a.item_id: a for a in self.store.answers(round=round_)}
        rows = []
        for item, score in self.store.requests(round_):
            a = answers.get(item)
            user = self.pool.user_names[self.pool.users[self.pool.index_of([item])[0]]]
            rows.append({
                "item_id": item, "user": user, "score": score,
                "label": None if a is None else a.label,
                "kind": "unanswered" if a is None else a.kind,
                "annotator": None if a is None else a.annotator,
            })
        columns = ["item_id", "user", "score", "label", "kind", "annotator"]
        return pd.DataFrame(rows, columns=columns)

    def _report(self, round_: int, n_labeled: int, metrics: dict, users: pd.DataFrame) -> None:
        # users.csv rides with the round's report, so a tracker that buffers rounds while its
        # server is away buffers the table too; the store keeps it as meta "users.round<k>"
        self.tracker.log_round(RoundReport(round_, n_labeled, metrics, self._queries_frame(round_),
                                           tables={"users": users}))

    # ------------------------------------------------------------------ run
    def _fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha1("\0".join(self.pool.ids.tolist()).encode()).hexdigest()
        return {
            "pool": digest, "strategy": self.strategy, "batch_size": self.batch_size,
            "quota": self.quota, "seed": self.seed, "likelihood": self.likelihood,
            "user_from": self.user_from, "ssi_hyperparameters": list(self.ssi_hyperparameters),
        }

    def run(self, n_rounds: int, *, resume: bool = False) -> MultiUserResult:
        """Run until round ``n_rounds − 1`` is complete (or the candidates run out).

        With ``resume=True`` a stored run continues: finished rounds are read back from the
        store (and re-logged to the tracker if it missed them), the last finished round's model
        is refitted at its stored (s_0, s_1), and an unfinished round is completed with the
        answers it already has. The loop holds the store's writer lease while it runs, and a
        resumed store must pass its hash chain first (as :meth:`alloop.loop.ActiveLoop.run`).
        """
        self.store.take_lease()
        try:
            if resume:
                self.store.require_intact()
            return self._run(n_rounds, resume)
        finally:
            self.store.release_lease()

    def _run(self, n_rounds: int, resume: bool) -> MultiUserResult:
        store = self.store
        if not resume and len(store):
            raise RuntimeError(
                f"label store {store.path} already holds {len(store)} answers; pass resume=True "
                "to continue it, or use a new store"
            )
        stored = store.get_meta("multiuser_fingerprint")
        if resume and stored is not None and stored != self._fingerprint():
            raise ValueError(f"cannot resume: the store was written by {stored!r}")
        store.set_meta("multiuser_fingerprint", self._fingerprint())
        params = {**self._fingerprint(), "s_init": list(self.s_init), "bounds": str(self.bounds)}
        run_id = self.tracker.start(
            self.run_name, params, store.get_meta("run_id") if resume else None
        )
        if run_id is not None:
            store.set_meta("run_id", run_id)

        done = store.completed_rounds()
        curve = [{"round": r, "labels": d["n_labeled"], **d["metrics"]} for r, d in done.items()]
        logged = self.tracker.logged_rounds()
        for r in sorted(set(done) - logged):
            users = pd.DataFrame(store.get_meta(f"users.round{r}") or [])
            self._report(r, done[r]["n_labeled"], done[r]["metrics"], users)
        model, users = None, pd.DataFrame()
        if done:
            last = max(done)
            model = HierarchicalGLM(
                self.likelihood, done[last]["metrics"]["s0"], done[last]["metrics"]["s1"]
            )
            model, _, _, counts = self._fit(model, last, search=False)
            users = self.user_table(model, counts)
        round_ = max(done) + 1 if done else 0
        try:
            while round_ < n_rounds:
                outcome = self._round(round_, model)
                if outcome is None:
                    break
                row, model, users = outcome
                curve.append(row)
                round_ += 1
        except BaseException:
            self.tracker.finish(pd.DataFrame(curve), f"{self.metric}_mean_users", None, "FAILED")
            raise
        frame = pd.DataFrame(curve)
        self.tracker.finish(frame, f"{self.metric}_mean_users", model)
        return MultiUserResult(frame, model, users, run_id)

    def _round(self, round_: int, model: HierarchicalGLM | None):
        store, pool = self.store, self.pool
        t0 = time.perf_counter()
        ids, scores = self._select(round_, model)
        select_seconds = time.perf_counter() - t0
        if not ids:
            return None
        store.record_requests(round_, ids, scores)
        have = {a.item_id for a in store.answers(round=round_)}  # a crashed run's answers
        positions = pool.index_of(ids)
        queries = [
            Query(i, x=pool.X[p : p + 1], score=s, round=round_)
            for i, p, s in zip(ids, positions, scores, strict=True)
            if i not in have
        ]
        asked = {q.item_id for q in queries}
        committed: set[int] = set()

        def commit(answer: Answer) -> str | None:
            if answer.item_id not in asked:
                return f"item {answer.item_id!r} was not asked in round {round_}"
            if self.user_from == "annotator":
                try:
                    pool.user_index(answer.annotator)
                except KeyError as err:
                    return str(err)
            store.append(answer, round_)
            committed.add(id(answer))
            return None

        if queries:
            answers = request_answers(self.oracle, queries, on_answer=commit)
            for answer in answers:
                if id(answer) not in committed and commit(answer) is not None:
                    raise ValueError(f"the oracle answered {answer.item_id!r}, which was not asked")
        t0 = time.perf_counter()
        model, info, n_labeled, counts = self._fit(model, round_, search=True)
        fit_seconds = time.perf_counter() - t0
        users = self.user_table(model, counts)
        metrics = self._metrics(model, info, users)
        metrics.update(select_seconds=select_seconds, fit_seconds=fit_seconds)
        metrics["answered"] = float(sum(a.kind == "label" for a in store.answers(round=round_)))
        store.set_meta(f"users.round{round_}", users.to_dict(orient="records"))
        store.complete_round(round_, n_labeled, metrics)
        self._report(round_, n_labeled, metrics, users)
        return {"round": round_, "labels": n_labeled, **metrics}, model, users
