"""alloop compare / report on a real MLflow store: the table against metrics read back by hand,
determinism across job counts, and a SIGKILLed compare that a rerun completes."""

import math
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from PIL import Image

import alloop.compare
from alloop.compare import load_compare_config, normalized_auc, paired_wilcoxon, report
from alloop.compare.figures import DPI, FIGSIZE
from alloop.compare.runner import plan
from alloop.compare.stats import labels_to_reach, mean_band, summarize
from alloop.config import ConfigError
from alloop.tracking import MlflowTracker

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["random", "entropy"]
SEEDS = [0, 1]


def write_config(folder: Path, name: str = "tiny") -> Path:
    """2 strategies × 2 seeds on breast cancer: a binary task where 95 % of the full-data
    accuracy is reached within the budget in some runs and not in others."""
    config = {
        "name": name,
        "data": {"source": "sklearn:breast_cancer", "max_items": 300},
        "model": {"kind": "logistic", "C": 1.0, "auto_regularity": False},
        "loop": {"initial": 6, "batch_size": 6, "rounds": 3},
        "compare": {"strategies": STRATEGIES, "seeds": len(SEEDS), "store_dir": str(folder / "stores")},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "alloop", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"alloop {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def uri_of(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> bytes:
    """An empty MLflow SQLite store, created once: its schema migrations take seconds."""
    folder = tmp_path_factory.mktemp("template")
    mlflow.MlflowClient(uri_of(folder)).search_experiments()
    return (folder / "mlflow.db").read_bytes()


def new_store(folder: Path, template: bytes) -> str:
    (folder / "mlflow.db").write_bytes(template)
    return uri_of(folder)


def runs_tagged(uri: str, kind: str, experiment: str = "tiny") -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], f"tags.alloop = '{kind}'", max_results=1000)


def curves_of(uri: str, metric: str = "accuracy") -> dict:
    """(strategy, seed) → [(labels, value), ...] straight from the parent runs' histories."""
    client = mlflow.MlflowClient(uri)
    out = {}
    for run in runs_tagged(uri, "loop"):
        history = client.get_metric_history(run.info.run_id, f"curve.{metric}")
        key = (run.data.params["strategy.name"], int(run.data.params["seed"]))
        # a run killed inside its final logging logs its curve again on resume: one per step
        out[key] = sorted({m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}.items())
    return out


@pytest.fixture(scope="module")
def parallel(tmp_path_factory, empty_store):
    """`alloop compare --jobs 2` of the tiny config into its own MLflow store."""
    folder = tmp_path_factory.mktemp("parallel")
    config = write_config(folder)
    uri = new_store(folder, empty_store)
    proc = cli("compare", str(config), "--jobs", "2", "--tracking-uri", uri, cwd=folder)
    return folder, config, proc


# ------------------------------------------------------------------------------------- CLI


def test_compare_runs_every_pair_once_with_a_full_data_reference(parallel):
    folder, _, proc = parallel
    uri = uri_of(folder)
    loops = runs_tagged(uri, "loop")
    assert sorted((r.data.params["strategy.name"], int(r.data.params["seed"])) for r in loops) == sorted(
        (s, k) for s in STRATEGIES for k in SEEDS
    )
    assert all(r.info.status == "FINISHED" for r in loops)
    assert sorted(r.info.run_name for r in loops) == sorted(f"{s}-seed{k}" for s in STRATEGIES for k in SEEDS)
    full = runs_tagged(uri, "full_data")
    assert sorted(int(r.data.params["seed"]) for r in full) == SEEDS
    for r in full:  # the reference is fitted on the whole pool: 75 % of the 300 items
        assert r.data.metrics["labels"] == 225
    stores = sorted(p.name for p in (folder / "stores").glob("*.sqlite"))
    assert stores == sorted(f"{s}-seed{k}.sqlite" for s in STRATEGIES for k in SEEDS)
    assert "random" in proc.stdout and "entropy" in proc.stdout


def test_rerun_skips_finished_pairs_and_force_plans_them_all(parallel, tmp_path):
    folder, config, _ = parallel
    cfg = load_compare_config(config)
    tasks, skipped = plan(cfg, MlflowTracker.existing("tiny", uri_of(folder)))
    assert tasks == [] and len(skipped) == 6

    copy = tmp_path / "mlflow.db"  # force discards runs: do it on a copy of the store
    copy.write_bytes((folder / "mlflow.db").read_bytes())
    tasks, skipped = plan(cfg, MlflowTracker.existing("tiny", f"sqlite:///{copy}"), force=True)
    assert skipped == [] and len(tasks) == 6 and not any(t.resume for t in tasks)
    assert runs_tagged(f"sqlite:///{copy}", "loop") == []  # old runs marked deleted


def test_only_reruns_one_strategy_and_keeps_the_others_runs(parallel, tmp_path):
    folder, config, _ = parallel
    cfg = load_compare_config(config)
    copy = tmp_path / "mlflow.db"
    copy.write_bytes((folder / "mlflow.db").read_bytes())
    uri = f"sqlite:///{copy}"
    tasks, _ = plan(cfg.only(["entropy"]), MlflowTracker.existing("tiny", uri), force=True)
    assert sorted((t.strategy, t.seed) for t in tasks if t.strategy) == [("entropy", 0), ("entropy", 1)]
    kept = runs_tagged(uri, "loop")
    assert sorted((r.data.params["strategy.name"], int(r.data.params["seed"])) for r in kept) == [
        ("random", 0), ("random", 1)]
    with pytest.raises(ValueError, match="margin.*its strategies: random, entropy"):
        cfg.only(["margin"])


# ------------------------------------------------------------------------------------- report


def brute_force_table(uri: str) -> pd.DataFrame:
    """The summary recomputed from MLflow without alloop.compare: loops over stored metrics."""
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny").experiment_id
    full = {int(r.data.params["seed"]): r.data.metrics["accuracy"] for r in runs_tagged(uri, "full_data")}
    per = {}
    for run in runs_tagged(uri, "loop"):
        name, seed = run.data.params["strategy.name"], int(run.data.params["seed"])
        points = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "curve.accuracy"))
        area = 0.0
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            area += (x1 - x0) * (y0 + y1) / 2
        reach = {}
        for fraction in (0.95, 0.99):
            hits = [x for x, y in points if y >= fraction * full[seed]]
            reach[fraction] = hits[0] if hits else math.inf
        rounds = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        seconds = [r.data.metrics["score_seconds"] + r.data.metrics["select_seconds"]
                   for r in rounds if "score_seconds" in r.data.metrics]
        per[name, seed] = {"final": points[-1][1], "nauc": area / (points[-1][0] - points[0][0]),
                           "reach": reach, "seconds": seconds}
    rows = []
    for name in STRATEGIES:
        runs = [per[name, k] for k in SEEDS]
        rows.append({
            "strategy": name,
            "final_accuracy": np.mean([r["final"] for r in runs]),
            "nauc_accuracy": np.mean([r["nauc"] for r in runs]),
            "nauc_accuracy_std": np.std([r["nauc"] for r in runs], ddof=1),
            "labels_95": np.median([r["reach"][0.95] for r in runs]),
            "labels_99": np.median([r["reach"][0.99] for r in runs]),
            "query_seconds": np.median(sum((r["seconds"] for r in runs), [])),
        })
    table = pd.DataFrame(rows).set_index("strategy")
    nauc = {name: [per[name, k]["nauc"] for k in SEEDS] for name in STRATEGIES}
    best = table["nauc_accuracy"].idxmax()
    for name in STRATEGIES:
        for column, other in (("p_vs_random", "random"), ("p_vs_best", best)):
            diff = np.subtract(nauc[name], nauc[other])
            table.loc[name, column] = (
                math.nan if name == other
                else 1.0 if not diff.any() else scipy.stats.wilcoxon(nauc[name], nauc[other]).pvalue
            )
    return table


def test_report_table_equals_values_recomputed_from_mlflow(parallel, tmp_path):
    folder, _, _ = parallel
    uri = uri_of(folder)
    rep = report("tiny", tracking_uri=uri, out=tmp_path / "report")
    written = pd.read_csv(tmp_path / "report" / "summary.csv").set_index("strategy")
    expected = brute_force_table(uri)
    assert sorted(written.index) == sorted(expected.index)
    for column in expected.columns:
        np.testing.assert_allclose(written.loc[expected.index, column], expected[column],
                                   rtol=1e-12, equal_nan=True, err_msg=column)
    # the setting is informative: some runs reach 95 % of the full-data accuracy, not all 99 %
    assert np.isfinite(expected["labels_95"]).any()
    assert written.index[0] == expected["nauc_accuracy"].idxmax()  # best first
    assert rep.table["strategy"].tolist() == written.index.tolist()

    markdown = (tmp_path / "report" / "summary.md").read_text()
    assert "| strategy | final accuracy | nAUC accuracy |" in markdown
    assert "![tiny learning curves](learning_curves.png)" in markdown

    with Image.open(tmp_path / "report" / "learning_curves.png") as image:
        image.load()  # decodes every pixel
        assert image.size == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
    svg = ET.parse(tmp_path / "report" / "learning_curves.svg").getroot()
    assert svg.tag.endswith("svg")

    client = mlflow.MlflowClient(uri)
    summary = client.get_run(rep.summary_run_id)
    assert summary.data.tags["alloop"] == "summary" and summary.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(rep.summary_run_id)}
    assert {"learning_curves.png", "learning_curves.svg", "summary.csv", "summary.md", "runs.csv"} <= artifacts
    assert summary.data.metrics["nauc.random"] == pytest.approx(expected.loc["random", "nauc_accuracy"])


def test_committed_results_page_figures_decode_at_the_expected_size():
    page = ROOT / "experiments" / "RESULTS.md"
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text())
    # every benchmark config has its learning curves on the page (one figure per metric shown)
    import yaml

    for config in (ROOT / "experiments" / "benchmarks").glob("*.yaml"):
        name = yaml.safe_load(config.read_text())["name"]
        assert any(f"/{name}/" in f"/{figure}" for figure in figures), f"no figure of {name}"
    for figure in figures:
        with Image.open(page.parent / figure) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))


# ------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_the_same_curve_sequentially_and_in_parallel(parallel, tmp_path, empty_store):
    folder, _, _ = parallel
    config = write_config(tmp_path)
    # the package is callable as compare() itself: alloop.compare(...) in a notebook
    table = alloop.compare(config, jobs=1, tracking_uri=new_store(tmp_path, empty_store), progress=False)
    assert sorted(table["strategy"]) == sorted(STRATEGIES)
    assert set(table.attrs["runs"]["action"]) == {"ran"}
    for metric in ("accuracy", "log_loss"):
        sequential, parallel_ = curves_of(uri_of(tmp_path), metric), curves_of(uri_of(folder), metric)
        assert sequential == parallel_  # exact: same labels bought, same floats
        assert len(sequential) == 4 and all(len(c) == 4 for c in sequential.values())


# ------------------------------------------------------------------------------------- SIGKILL


def rounds_of(uri: str, run_id: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny").experiment_id
    return client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run_id}'")


def _alive(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_compare_rerun_completes_only_the_missing_pairs(parallel, tmp_path, empty_store):
    folder, _, _ = parallel
    config = write_config(tmp_path)
    uri = new_store(tmp_path, empty_store)  # the schema exists before two processes use it
    log = tmp_path / "killed.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alloop", "compare", str(config), "--jobs", "1",
             "--tracking-uri", uri],
            cwd=tmp_path, stdout=sink, stderr=sink, start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while True:  # kill once one pair has finished and the next one is under way
        assert proc.poll() is None, f"compare ended before it could be killed:\n{log.read_text()}"
        assert time.monotonic() < deadline
        try:
            loops = runs_tagged(uri, "loop")
        except Exception:  # no experiment yet, or the store is busy
            loops = []
        running = [r.info.run_id for r in loops if r.info.status == "RUNNING"]
        if any(r.info.status == "FINISHED" for r in loops) and running and rounds_of(uri, running[0]):
            break  # a pair finished, and the next has logged a round: it is mid-run
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while _alive(proc.pid):  # workers notice that the compare process is gone and exit
        assert time.monotonic() < deadline, "worker processes outlived the compare process"
        time.sleep(0.1)

    before = {r.info.run_id: r for r in runs_tagged(uri, "loop")}
    finished = {i: r for i, r in before.items() if r.info.status == "FINISHED"}
    unfinished = {i for i, r in before.items() if r.info.status != "FINISHED"}
    assert 1 <= len(finished) < 4
    client = mlflow.MlflowClient(uri)
    histories = {i: client.get_metric_history(i, "curve.accuracy") for i in finished}

    cli("compare", str(config), "--jobs", "2", "--tracking-uri", uri, cwd=tmp_path)

    after = {r.info.run_id: r for r in runs_tagged(uri, "loop")}
    assert len(after) == 4 and all(r.info.status == "FINISHED" for r in after.values())
    for run_id, old in finished.items():  # untouched: same run, same end, same curve
        assert after[run_id].info.end_time == old.info.end_time
        assert client.get_metric_history(run_id, "curve.accuracy") == histories[run_id]
    assert unfinished <= set(after)  # the interrupted pair was resumed, not started again
    assert len(runs_tagged(uri, "full_data")) == 2
    assert curves_of(uri) == curves_of(uri_of(folder))  # identical to the uninterrupted compare


# ------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"compare": {"strategies": ["random", "nope"], "seeds": 2}}, "compare.strategies.1.name: unknown strategy 'nope'"),
        ({"compare": {"strategies": ["random", "random"], "seeds": 2}}, "each strategy may be listed once"),
        ({"compare": {"strategies": ["random"], "seeds": 0}}, "compare.seeds: seeds must be at least 1"),
        ({"seed": 3}, "seed: give the number of seeds"),
        ({"strategy": {"name": "entropy"}}, "strategy: list the strategies under compare.strategies"),
        ({"compare": None, "loop": {"rounds": 2}}, "has no compare section"),
        ({"loop": {"rounds": -1}}, "loop.rounds: Input should be greater than or equal to 0"),
        ({"oracle": {"kind": "terminal"}}, "needs the simulated oracle"),
    ],
)
def test_bad_compare_config_names_the_problem(tmp_path, change, message):
    data = yaml.safe_load(write_config(tmp_path).read_text())
    data.update(change)
    if data.get("compare") is None:
        data.pop("compare")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=None) as error:
        load_compare_config(path)
    assert message in " ".join(str(error.value).split())


def test_each_pair_gets_its_own_store_and_run_name(tmp_path):
    cfg = load_compare_config(write_config(tmp_path))
    configs = [cfg.run_config(s, k) for s, k in cfg.pairs()]
    assert [(c.strategy.name, c.seed) for c in configs] == [(s, k) for k in SEEDS for s in STRATEGIES]
    assert len({c.store_path() for c in configs}) == 4
    assert cfg.run_config("entropy", 1).store_path() == tmp_path / "stores" / "entropy-seed1.sqlite"
    assert cfg.experiment == "tiny"


# ------------------------------------------------------------------------------------- statistics


def test_normalized_auc_is_the_mean_height_of_the_trapezoids():
    # trapezoids 10→20: (0.5+0.7)/2·10 = 6, 20→40: (0.7+0.8)/2·20 = 15; width 30
    assert normalized_auc([10, 20, 40], [0.5, 0.7, 0.8]) == pytest.approx(21 / 30)
    assert normalized_auc([5], [0.3]) == 0.3
    with pytest.raises(ValueError, match="increase strictly"):
        normalized_auc([10, 10], [0.1, 0.2])


def test_labels_to_reach_errors_count_within_the_inverse_fraction():
    assert labels_to_reach([10, 20, 30], [3.0, 2.0, 1.04], 1.0 / 0.95, lower_is_better=True) == 30
    assert labels_to_reach([10, 20], [0.1, 0.2], 0.5, lower_is_better=False) == math.inf


def test_mean_band_is_the_student_t_interval_of_the_mean():
    curves = np.array([[0.1, 0.5], [0.3, 0.6], [0.2, 0.9]])
    mean, low, high = mean_band(curves)
    for j in range(2):
        column = curves[:, j]
        half = scipy.stats.t.ppf(0.975, 2) * np.std(column, ddof=1) / np.sqrt(3)
        assert (low[j], high[j]) == pytest.approx((column.mean() - half, column.mean() + half))


def test_wilcoxon_of_identical_samples_is_one_and_needs_two_pairs():
    assert paired_wilcoxon([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 1.0
    assert math.isnan(paired_wilcoxon([0.1], [0.2]))
    # all six differences positive: the exact two-sided p is 2 / 2^6
    assert paired_wilcoxon(np.arange(6) + 1.0, np.arange(6) * 0.5) == pytest.approx(2 / 64)


def test_a_run_that_stopped_early_keeps_its_last_value():
    curves = pd.DataFrame({
        "strategy": ["a"] * 3 + ["b"] * 2, "seed": 0,
        "labels": [10, 20, 30, 10, 20], "accuracy": [0.5, 0.7, 0.7, 0.6, 0.8],
    })
    table = summarize(curves, pd.DataFrame({"seed": [0], "accuracy": [0.8]}), "accuracy", False)
    nauc = dict(zip(table["strategy"], table["nauc_accuracy"]))
    assert nauc["a"] == pytest.approx((6 + 7) / 20)
    assert nauc["b"] == pytest.approx((7 + 8) / 20)  # 0.8 held from 20 to 30 labels
    assert table["strategy"].tolist() == ["b", "a"]
    assert dict(zip(table["strategy"], table["labels_99"])) == {"a": math.inf, "b": 20}
