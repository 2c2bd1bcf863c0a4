"""The loop through the Python API: rounds, stops, determinism, bad input."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits

from alloop import ActiveLoop, LabelStore, Pool
from alloop.loop import InvalidAnswerError, LoopSettings, StoreNotEmptyError
from alloop.models import LinearGLM, SoftmaxGLM
from oracles import Answer, OracleBase, SimulatedOracle


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X[:400], y[:400], X[400:700], y[400:700]


def make_loop(digits, strategy="random", store=None, oracle=None, y_test=None, **settings):
    X, y, Xt, yt = digits
    pool = Pool(X)
    oracle = oracle or SimulatedOracle(dict(zip(pool.ids, y)))
    defaults = dict(initial=20, batch_size=10, rounds=3, progress=False)
    return ActiveLoop(
        pool,
        SoftmaxGLM(),
        strategy,
        oracle,
        LoopSettings(**{**defaults, **settings}),
        X_test=Xt,
        y_test=yt if y_test is None else y_test,
        classes=range(10),
        store=store,
    )


def test_rounds_store_every_label_and_report_a_curve(digits):
    store = LabelStore(":memory:")
    result = make_loop(digits, store=store).run()
    assert result.curve["labels"].tolist() == [20, 30, 40, 50]
    assert result.stop_reason == "max_rounds"
    assert len(store.current_labels()) == 50
    assert sorted(store.completed_rounds()) == [0, 1, 2, 3]
    # labels in the store are the oracle's answers for exactly the labeled pool items
    pool = result.pool
    X, y, _, _ = digits
    for item, label in store.current_labels().items():
        assert label == y[int(item)]
    assert pool.labeled.sum() == 50
    assert {"accuracy", "macro_f1", "log_loss", "fit_seconds", "score_seconds"} <= set(result.curve)


def test_same_seed_same_curve_and_other_seed_differs(digits):
    a = make_loop(digits, seed=3).run().curve
    b = make_loop(digits, seed=3).run().curve
    c = make_loop(digits, seed=4).run().curve
    cols = ["labels", "accuracy", "log_loss"]
    assert a[cols].equals(b[cols])
    assert not a["log_loss"].equals(c["log_loss"])


def test_budget_and_target_stop_rules(digits):
    result = make_loop(digits, budget=35, rounds=None).run()
    assert result.curve["labels"].tolist() == [20, 30, 35]
    assert result.stop_reason == "budget"
    result = make_loop(digits, target={"metric": "accuracy", "value": 0.0}, rounds=None).run()
    assert result.stop_reason == "target" and len(result.curve) == 1


def test_stabilizing_predictions_stop(digits):
    result = make_loop(digits, stabilize={"patience": 1, "tol": 1.0}, rounds=None).run()
    assert result.stop_reason == "stable" and len(result.curve) == 2


def test_pool_exhausted_stops(digits):
    X, y, Xt, yt = digits
    pool = Pool(X[:25])
    loop = ActiveLoop(
        pool,
        SoftmaxGLM(),
        "random",
        SimulatedOracle(dict(zip(pool.ids, y[:25]))),
        settings=LoopSettings(initial=20, batch_size=10, rounds=None, progress=False),
        X_test=Xt,
        y_test=yt,
        classes=range(10),
    )
    result = loop.run()
    assert result.curve["labels"].tolist() == [20, 25] and result.stop_reason == "pool_exhausted"


def test_regression_loop(digits):
    X, y = load_diabetes(return_X_y=True)
    pool = Pool(X[:300])
    loop = ActiveLoop(
        pool,
        LinearGLM(),
        "random",
        SimulatedOracle(dict(zip(pool.ids, y[:300]))),
        settings=LoopSettings(initial=10, batch_size=5, rounds=2, progress=False),
        X_test=X[300:],
        y_test=y[300:],
    )
    curve = loop.run().curve
    assert {"rmse", "mae", "r2"} <= set(curve) and curve["labels"].tolist() == [10, 15, 20]


class PartialOracle(OracleBase):
    """Answers every other query (people skip items); returns them without handing them over."""

    def __init__(self, truth):
        self.truth = truth

    def request(self, queries, on_answer=None):
        return [Answer(q.item_id, self.truth[q.item_id]) for q in queries[::2]]


def test_partial_answers_are_fine(digits):
    X, y, _, _ = digits
    loop = make_loop(digits, oracle=PartialOracle(dict(zip(map(str, range(400)), y))))
    result = loop.run()
    assert result.curve["labels"].tolist() == [10, 15, 20, 25]


# ----------------------------------------------------------------- bad input
class UnknownLabelOracle(SimulatedOracle):
    def request(self, queries, on_answer=None):
        answers = super().request(queries)
        return answers[:-1] + [Answer(answers[-1].item_id, "eleven")]


def test_label_outside_classes_is_refused_and_store_is_intact(digits, tmp_path):
    X, y, _, _ = digits
    store = LabelStore(tmp_path / "s.sqlite")
    oracle = UnknownLabelOracle(dict(zip(map(str, range(400)), y)))
    with pytest.raises(InvalidAnswerError, match=r"label 'eleven' is not one of \[0, 1"):
        make_loop(digits, store=store, oracle=oracle).run()
    assert len(store.current_labels()) == 19  # the 19 valid answers were kept
    assert all(a.label != "eleven" for a in store.answers())


def test_batch_larger_than_pool(digits):
    with pytest.raises(ValueError, match="batch_size = 500 is larger than the pool"):
        make_loop(digits, batch_size=500)


def test_empty_pool():
    with pytest.raises(ValueError, match="pool is empty"):
        Pool(np.empty((0, 3)))


def test_nan_features_are_named():
    X = np.ones((5, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[2\], columns \[1\]"):
        Pool(X)


def test_X_y_length_mismatch(digits):
    X, y, Xt, yt = digits
    with pytest.raises(ValueError, match="X_test has 300 rows but y_test has 299"):
        make_loop(digits, y_test=yt[:-1])
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        SoftmaxGLM().fit(X[:5], y[:4])


def test_unknown_strategy_lists_valid_names(digits):
    with pytest.raises(KeyError, match="valid names: .*random"):
        make_loop(digits, strategy="no-such-strategy")


def test_fresh_run_on_used_store_is_refused(digits, tmp_path):
    store = LabelStore(tmp_path / "s.sqlite")
    make_loop(digits, store=store, rounds=1).run()
    before = store.answers()
    with pytest.raises(StoreNotEmptyError, match="--resume"):
        make_loop(digits, store=store, rounds=1).run()
    assert store.answers() == before


def test_resume_in_process_continues_after_last_round(digits, tmp_path):
    full = make_loop(digits, rounds=4).run().curve
    store = LabelStore(tmp_path / "s.sqlite")
    make_loop(digits, store=store, rounds=2).run()
    resumed = make_loop(digits, store=store, rounds=4).run(resume=True).curve
    cols = ["labels", "accuracy", "log_loss"]
    assert resumed[cols].equals(full[cols])


# ----------------------------------------------------------------- people who do not answer
class SilentOnSome(OracleBase):
    """Never answers items whose id ends in 7, skips those ending in 3."""

    def __init__(self, truth):
        self.truth, self.asked = truth, []

    def request(self, queries, on_answer=None):
        self.asked.append([q.item_id for q in queries])
        out = []
        for q in queries:
            if q.item_id.endswith("7"):
                continue
            kind = "skip" if q.item_id.endswith("3") else "label"
            a = Answer(q.item_id, self.truth[q.item_id] if kind == "label" else None, kind=kind)
            if on_answer(a) is None:
                out.append(a)
        return out


def test_unanswered_items_are_reoffered_at_most_twice_and_skips_never_again(digits):
    X, y, _, _ = digits
    person = SilentOnSome(dict(zip(map(str, range(400)), y)))
    result = make_loop(digits, oracle=person, rounds=6, strategy="entropy").run()
    counts = {}
    for batch in person.asked:
        for item in batch:
            counts[item] = counts.get(item, 0) + 1
    assert max(counts[i] for i in counts if i.endswith("7")) <= 3  # asked once, re-offered twice
    assert all(counts[i] == 1 for i in counts if i.endswith("3"))  # a skip is not asked again
    assert result.curve["labels"].is_monotonic_increasing
    assert result.curve["labels"].iloc[-1] > result.curve["labels"].iloc[1] + 20  # no stall


class NobodyHome(OracleBase):
    def request(self, queries, on_answer=None):
        return []


def test_an_oracle_that_stops_answering_ends_the_run(digits):
    X, y, _, _ = digits
    store = LabelStore(":memory:")
    make_loop(digits, store=store, rounds=0).run()
    loop = make_loop(digits, store=store, oracle=NobodyHome(), rounds=None, budget=400)
    result = loop.run(resume=True)
    assert result.stop_reason == "no_answers"


def test_non_numeric_regression_label_is_refused_and_valid_ones_kept(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    pool = Pool(X[:100])

    class Typo(SimulatedOracle):
        def request(self, queries, on_answer=None):
            answers = super().request(queries)
            return [Answer(answers[0].item_id, "abc")] + answers[1:]

    store = LabelStore(tmp_path / "s.sqlite")
    loop = ActiveLoop(
        pool,
        LinearGLM(),
        "random",
        Typo(dict(zip(pool.ids, y[:100]))),
        settings=LoopSettings(initial=10, rounds=1, progress=False),
        store=store,
    )
    with pytest.raises(InvalidAnswerError, match="'abc' is not a finite number"):
        loop.run()
    assert len(store.current_labels()) == 9


def test_classifier_without_probabilities_runs(digits):
    from sklearn.svm import LinearSVC

    from alloop.models import SklearnModel

    X, y, Xt, yt = digits
    pool = Pool(X)
    loop = ActiveLoop(
        pool,
        SklearnModel(LinearSVC()),
        "random",
        SimulatedOracle(dict(zip(pool.ids, y))),
        settings=LoopSettings(initial=30, batch_size=10, rounds=1, progress=False),
        X_test=Xt,
        y_test=yt,
        classes=range(10),
    )
    curve = loop.run().curve
    assert "accuracy" in curve and "log_loss" not in curve


def test_relabel_reaches_items_labeled_after_the_initial_set(tmp_path):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    truth = {str(i): int(v) for i, v in enumerate(y[:400])}
    loop = ActiveLoop(
        Pool(X[:400]),
        SoftmaxGLM(s=1.0),
        "random",
        SimulatedOracle(truth, noise=0.3, classes=list(range(10)), seed=2),
        settings=LoopSettings(
            initial=20, batch_size=20, rounds=4, relabel={"every": 1, "count": 10}, progress=False
        ),
        X_val=X[400:600],
        y_val=y[400:600],
        classes=range(10),
    )
    result = loop.run()
    assert result.curve["relabeled"].iloc[1:].tolist() == [10, 10, 10, 10]
