"""experiments/benchmarks/build_results.py rebuilds the page from committed per-seed tables.

The tracking stores behind RESULTS.md do not travel with the repository; the builder keeps a
seed × strategy nAUC table per experiment (``results/<experiment>/nauc.csv`` and ``meta.json``)
and builds from it when no store has the experiment. These tests build a page from a tiny
synthetic results folder and check its tables against means and tests computed here directly.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"))
import build_results  # noqa: E402
import nauc_tables  # noqa: E402

from alloop.compare.runs import Comparison  # noqa: E402

OLD = "sqlite:////tmp/earlier/mlflow.db"


def _long(strategies: dict[str, float], metrics: list[str], seeds: int, rng) -> pd.DataFrame:
    rows = [(s, seed, m, level * (1 + 0.01 * k) + 0.01 * rng.standard_normal())
            for k, m in enumerate(metrics) for s, level in strategies.items() for seed in range(seeds)]
    return pd.DataFrame(rows, columns=nauc_tables.COLUMNS)


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    (results / "preamble.md").write_text("Synthetic preamble.\n")
    rng = np.random.default_rng(0)
    regression = _long({"random": 60.0, "coreset": 59.0, "egl": 58.0, "portfolio": 58.5}, ["rmse", "mae"], 7, rng)
    nauc_tables.Tables("bench-diabetes", "regression", regression, 300, OLD, committed=True).save(results)
    (results / "bench-diabetes" / "rmse").mkdir()
    (results / "bench-diabetes" / "rmse" / "section.md").write_text("### bench-diabetes: rmse\n\nkept text\n")
    svm = _long({"random": 0.90, "margin": 0.93}, ["accuracy"], 6, rng)
    # one margin run without its random partner: left out of the paired table
    svm = pd.concat([svm, pd.DataFrame([["margin", 6, "accuracy", 0.5]], columns=nauc_tables.COLUMNS)])
    nauc_tables.Tables("lu2023-wdbc-svm", "classification", svm, 341, OLD, committed=True).save(results)
    return results


def test_the_page_is_built_from_committed_tables_and_says_so(tmp_path):
    results = _results(tmp_path)
    page = build_results.build_page([], results=results, page=tmp_path / "RESULTS.md")

    long = pd.read_csv(results / "bench-diabetes" / "nauc.csv")
    rmse = long[long.metric == "rmse"].pivot(index="seed", columns="strategy", values="nauc")
    egl = rmse["egl"].mean()
    p = stats.wilcoxon(rmse["egl"], rmse["random"]).pvalue
    assert f"| egl | {egl:.4f} ({build_results._p(p)})" in page
    assert "7 seeds paired" in page
    where = (f"Numbers from committed tables (`results/<experiment>/nauc.csv`), from an earlier build "
             f"of store `{OLD}`: bench-diabetes.")
    assert where in page
    # the portfolio against its best arm (egl, lowest mean rmse among coreset, egl, random)
    diff = rmse["portfolio"].mean() - egl
    assert f"| bench-diabetes | rmse | egl {egl:.4f} | {rmse['portfolio'].mean():.4f} | {diff:+.4f} |" in page
    # the full section is the committed file; mae has none and is left out
    assert "kept text" in page and "### bench-diabetes: mae" not in page
    assert "Not shown from this run: bench-breast-cancer, bench-credit-cards, bench-fine-foods, bench-digits" in page

    svm = pd.read_csv(results / "lu2023-wdbc-svm" / "nauc.csv")
    acc = svm.pivot(index="seed", columns="strategy", values="nauc").dropna()
    assert len(acc) == 6
    row = (f"| wdbc | 341 | 6 | {acc['random'].mean():.4f} | {acc['margin'].mean():.4f} | "
           f"{acc['margin'].mean() - acc['random'].mean():+.4f} |")
    assert row in page
    assert f"RBF-SVM: Numbers from committed tables (`results/<experiment>/nauc.csv`), from an earlier build of store `{OLD}`: wdbc." in page
    assert "Not run: breast (SVM)" in page and "GLM not run: wdbc, breast" in page


def test_tables_read_from_runs_survive_the_round_trip_through_the_repository(tmp_path):
    labels = [10, 15, 25]
    rows = []
    for strategy, shift in (("random", 0.0), ("margin", 0.05)):
        for seed in range(3):
            for i, n in enumerate(labels):
                rows.append({"strategy": strategy, "seed": seed, "run_id": f"{strategy}{seed}", "labels": n,
                             "accuracy": 0.5 + 0.1 * i + shift + 0.01 * seed, "log_loss": 0.7 - 0.1 * i})
    full = pd.DataFrame({"seed": [0, 1, 2], "run_id": "f", "labels": 200, "accuracy": 0.95, "log_loss": 0.1})
    runs = Comparison("bench-x", "1", "classification", pd.DataFrame(rows), full)

    tables = nauc_tables.from_comparison(runs, ["accuracy", "log_loss", "roc_auc"], "sqlite:///new.db")
    assert tables.metrics == ["accuracy", "log_loss"] and tables.labels == 200
    # nAUC by the trapezoid rule over the label range, written out
    y = [0.55 + 0.01, 0.65 + 0.01, 0.75 + 0.01]  # margin, seed 1
    expected = ((y[0] + y[1]) / 2 * 5 + (y[1] + y[2]) / 2 * 10) / 15
    assert abs(tables.nauc("accuracy").loc[1, "margin"] - expected) < 1e-12

    tables.save(tmp_path)
    again = nauc_tables.committed("bench-x", tmp_path)
    assert again.committed and again.store == "sqlite:///new.db" and again.labels == 200
    assert again.task == "classification" and again.metrics == ["accuracy", "log_loss"]
    for m in ("accuracy", "log_loss"):
        pd.testing.assert_frame_equal(again.nauc(m), tables.nauc(m), check_exact=True, check_names=False)
    assert nauc_tables.load("bench-x", [], ["accuracy"], tmp_path).store == "sqlite:///new.db"
    assert nauc_tables.committed("bench-y", tmp_path) is None


def test_the_examples_of_the_table_module_run():
    assert doctest.testmod(nauc_tables).failed == 0


def test_a_rerun_store_replaces_its_strategies_and_the_page_says_where_each_came_from(tmp_path, monkeypatch):
    results = _results(tmp_path)
    new_uri = "sqlite:////tmp/rerun/mlflow.db"
    rng = np.random.default_rng(1)
    rerun = _long({"portfolio": 57.0}, ["rmse", "mae", "r2"], 7, rng)  # r2: no partner runs, dropped

    def from_store(experiment, uri, metrics):  # the rerun store has only bench-diabetes's portfolio
        if uri == new_uri and experiment == "bench-diabetes":
            return nauc_tables.Tables(experiment, "regression", rerun, 300, uri, committed=False)
        return None

    monkeypatch.setattr(nauc_tables, "from_store", from_store)
    before = pd.read_csv(results / "bench-diabetes" / "nauc.csv")
    page = build_results.build_page([], results=results, page=tmp_path / "RESULTS.md", reruns=[new_uri])

    rmse = rerun[rerun.metric == "rmse"].set_index("seed")["nauc"]
    old = before[before.metric == "rmse"].pivot(index="seed", columns="strategy", values="nauc")
    egl = old["egl"].mean()
    assert f"| bench-diabetes | rmse | egl {egl:.4f} | {rmse.mean():.4f} | {rmse.mean() - egl:+.4f} |" in page
    assert (f"from an earlier build of store `{OLD}`, with portfolio rerun in rerun store `{new_uri}`: "
            "bench-diabetes.") in page
    assert "the rows and curves of portfolio are from before their rerun" in page
    # kept in the repository: a build without the rerun store gives the same numbers and says so
    kept = nauc_tables.committed("bench-diabetes", results)
    assert kept.rerun == {"portfolio": new_uri} and kept.metrics == ["rmse", "mae"]
    pd.testing.assert_frame_equal(kept.nauc("rmse").drop(columns="portfolio"), old.drop(columns="portfolio"),
                                  check_names=False)
    again = build_results.build_page([], results=results, page=tmp_path / "RESULTS.md")
    assert f"with portfolio rerun in store `{new_uri}` of an earlier build: bench-diabetes." in again
    assert f"| {rmse.mean():.4f} |" in again
