"""The metrics users choose: any scikit-learn scorer name, ROC-AUC for two and more classes,
probability metrics refused up front, and a report headed by the metric asked for."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

from alloop import ActiveLoop, Pool
from alloop.config import ConfigError, parse_config
from alloop.loop import LoopSettings
from alloop.metrics import MetricError, evaluate
from alloop.models import LogisticGLM
from alloop.models.sklearn_adapter import SklearnModel
from oracles import SimulatedOracle


class Fixed:
    """A classifier with a fixed prediction set (unit test of our own metric code)."""

    task = "classification"

    def __init__(self, proba, classes):
        self.proba, self.classes_ = np.asarray(proba), np.asarray(classes)

    def predict_proba(self, X):
        return self.proba

    def predict(self, X):
        return self.classes_[self.proba.argmax(axis=1)]


def test_binary_metrics_equal_scikit_learn_on_a_fixed_prediction_set():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.1).astype(int)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(200), 0.01, 0.99)
    model = Fixed(np.column_stack([1 - p1, p1]), [0, 1])
    X = np.zeros((200, 1))
    got = evaluate(model, X, y, metrics=["roc_auc", "average_precision", "balanced_accuracy",
                                         "accuracy", "log_loss", "neg_brier_score", "f1"])
    pred = (p1 > 0.5).astype(int)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1), abs=1e-12)
    assert got["average_precision"] == pytest.approx(skm.average_precision_score(y, p1), abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p1), abs=1e-12)
    assert got["neg_brier_score"] == pytest.approx(-skm.brier_score_loss(y, p1), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)


def test_multiclass_roc_auc_is_one_vs_rest_macro():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = evaluate(Fixed(proba, [0, 1, 2]), np.zeros((150, 1)), y, metrics=["roc_auc", "roc_auc_ovo"])
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12)
    assert got["roc_auc_ovo"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovo"), abs=1e-12)


@pytest.mark.parametrize("name", ["roc_auc_ovr", "balanced_accuracy", "f1_weighted", "neg_log_loss",
                                  "precision_macro", "recall_micro", "jaccard_macro"])
def test_scorer_names_equal_scikit_learn_scorers_on_a_scikit_learn_model(name):
    X, y = load_iris(return_X_y=True)
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    model = SklearnModel(lr)
    assert evaluate(model, X, y, metrics=[name])[name] == pytest.approx(
        skm.get_scorer(name)(lr, X, y), abs=1e-12)


def test_regression_scorer_names_equal_scikit_learn():
    X, y = load_iris(return_X_y=True)
    lr = LinearRegression().fit(X[:, :3], X[:, 3])
    got = evaluate(SklearnModel(lr), X[:, :3], X[:, 3],
                   metrics=["rmse", "neg_median_absolute_error", "explained_variance"])
    for name in ("neg_median_absolute_error", "explained_variance"):
        assert got[name] == pytest.approx(skm.get_scorer(name)(lr, X[:, :3], X[:, 3]), abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(X[:, 3], lr.predict(X[:, :3]))))


def test_probability_metric_on_a_model_without_probabilities_is_refused_up_front():
    X, y = load_iris(return_X_y=True)
    pool = Pool(X)
    oracle = SimulatedOracle(dict(zip(pool.ids, y, strict=True)))
    svc = SklearnModel(LinearSVC())
    for name in ("roc_auc", "log_loss", "average_precision", "neg_log_loss"):
        with pytest.raises(MetricError, match="predict_proba"):
            ActiveLoop(
                pool,
                svc,
                "random",
                oracle,
                settings=LoopSettings(metrics=[name], progress=False),
                X_test=X,
                y_test=y,
                classes=[0, 1, 2],
            )
    loop = ActiveLoop(
        pool,
        svc,
        "random",
        oracle,
        settings=LoopSettings(initial=10, rounds=1, metrics=["balanced_accuracy"], progress=False),
        X_test=X,
        y_test=y,
        classes=[0, 1, 2],
    )
    assert "balanced_accuracy" in loop.run().curve
    with pytest.raises(MetricError, match="did you mean"):
        ActiveLoop(
            pool,
            LogisticGLM(),
            "random",
            oracle,
            settings=LoopSettings(metrics=["roc_uac"]),
            classes=[0, 1, 2],
        )
    with pytest.raises(MetricError, match="regression"):
        ActiveLoop(
            pool,
            LogisticGLM(),
            "random",
            oracle,
            settings=LoopSettings(metrics=["rmse"]),
            classes=[0, 1, 2],
        )


def test_config_metrics_are_checked_at_load():
    base = {"name": "m", "data": {"source": "sklearn:iris"}}
    cfg = parse_config({**base, "loop": {"metrics": ["accuracy", "roc_auc", "balanced_accuracy"]}})
    assert cfg.loop.metrics == ["accuracy", "roc_auc", "balanced_accuracy"]
    with pytest.raises(ConfigError, match="loop.metrics.*unknown metric 'roc_uac'"):
        parse_config({**base, "loop": {"metrics": ["roc_uac"]}})
    with pytest.raises(ConfigError, match="loop.target.metric"):
        parse_config({**base, "loop": {"target": {"metric": "acuracy", "value": 0.9}}})


def test_report_on_an_imbalanced_set_ranks_by_roc_auc(tmp_path):
    X, y = make_classification(n_samples=500, n_features=6, n_informative=3, weights=[0.94],
                               flip_y=0.0, random_state=0)
    assert 0.04 < y.mean() < 0.08
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(label=y)
    frame.to_csv(tmp_path / "rare.csv", index=False)
    config = {
        "name": "rare",
        "data": {"source": str(tmp_path / "rare.csv"), "target": "label", "task": "classification",
                 "validation_size": 0.2},
        "model": {"kind": "logistic"},
        "loop": {"initial": 20, "batch_size": 10, "rounds": 3,
                 "metrics": ["accuracy", "roc_auc", "average_precision"]},
        "compare": {"strategies": ["random", "margin"], "seeds": 2, "store_dir": str(tmp_path / "s"),
                    "metric": "roc_auc"},
    }
    path = tmp_path / "rare.yaml"
    path.write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = [sys.executable, "-m", "alloop"]
    done = subprocess.run([*run, "compare", str(path), "--jobs", "1", "--tracking-uri", uri],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "roc_auc" in done.stderr + done.stdout
    out = tmp_path / "report"
    done = subprocess.run([*run, "report", "rare", "--metric", "roc_auc", "--tracking-uri", uri,
                           "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert {"final_roc_auc", "nauc_roc_auc"} <= set(summary.columns)
    assert summary["final_roc_auc"].between(0.5, 1.0).all()
    assert "test roc_auc (higher is better)" in (out / "summary.md").read_text()
    bad = subprocess.run([*run, "report", "rare", "--metric", "roc_uac", "--tracking-uri", uri,
                          "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "roc_auc" in bad.stderr
