"""The public API a newcomer reaches for: dir(alloop), and models passed as they come."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import alloop
from oracles import SimulatedOracle


def test_dir_and_all_list_the_public_api():
    for name in ("ActiveLoop", "Pool", "LabelStore", "LoopResult", "compare"):
        assert name in dir(alloop)
    assert {"ActiveLoop", "Pool", "LabelStore"} <= set(alloop.__all__)
    assert alloop.LabelStore is __import__("alloop.store", fromlist=["LabelStore"]).LabelStore


def digits_loop(model, strategy, rounds=1):
    X, y = load_digits(return_X_y=True)
    pool = alloop.Pool(X[:300] / 16)
    oracle = SimulatedOracle(dict(zip(pool.ids, y[:300])))
    settings = alloop.LoopSettings(initial=20, batch_size=10, rounds=rounds, progress=False)
    return alloop.ActiveLoop(pool, model, strategy, oracle, settings, X_test=X[1200:] / 16,
                             y_test=y[1200:], classes=range(10))


def test_a_scikit_learn_estimator_just_works():
    result = digits_loop(LogisticRegression(max_iter=500), "margin", rounds=2).run()
    assert result.curve["labels"].tolist() == [20, 30, 40]
    assert np.all(np.isfinite(result.curve["accuracy"]))


def test_logistic_regression_under_a_gradient_strategy_becomes_its_glm():
    loop = digits_loop(LogisticRegression(), "sld")
    assert type(loop.model).__name__ == "SoftmaxGLM"
    assert len(loop.run().curve) == 2


def test_a_modal_learner_just_works():
    import strategies
    from alloop.interop import ActiveLearner

    X, y = load_digits(return_X_y=True)
    learner = ActiveLearner(LogisticRegression(max_iter=500), query_strategy=strategies.get("margin"),
                            X_training=X[:20] / 16, y_training=y[:20])
    assert len(digits_loop(learner, "margin").run().curve) == 2
