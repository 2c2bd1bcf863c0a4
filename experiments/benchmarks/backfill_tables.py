"""One-off: the committed per-seed tables (``results/<experiment>/nauc.csv``, ``meta.json``) of the
experiments on the page of commit 753fb15, whose tracking stores are gone, from the files that
build left in the repository (read from that commit with ``git show``, so later builds and the
removal of ``results/lu2023/`` do not change what this writes).

    python experiments/benchmarks/backfill_tables.py

- the six sets: ``results/<set>/<metric>/runs.csv`` (``alloop report``'s per-run statistics) for
  accuracy and log-loss, RMSE and MAE on the regressions. ROC-AUC and average precision per seed
  were never written to the repository (only their means, on the page), so they are not here;
- Lu et al.: ``results/lu2023/<set>-svm-nauc.csv`` (accuracy) and
  ``results/lu2023/<set>-glm-nauc-<metric>.csv`` (accuracy, ROC-AUC, log-loss), seed × strategy
  tables of the seeds every strategy finished. The SVM table's pool size is recomputed from the
  data as the loop splits it (``max_items``, then ``test_size`` rounded up);
- the store of each, from the committed ``results/timings.csv`` (which names the store each
  config was read from); digits has no row there and was run into store 1 of that page.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from alloop.data.splits import _count

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "lu2023")]
from build_results import LU_SETS, RESULTS, ROOT, SIX, _experiment_of  # noqa: E402
from nauc_tables import COLUMNS, Tables  # noqa: E402

BUILD = "753fb15"
STORE_1 = "sqlite:////tmp/bench2/mlflow.db"  # that page's store 1 ("this page's run")


def _stores() -> dict[str, str]:
    t = _read(RESULTS / "timings.csv")
    return {_experiment_of(c): s for c, s in zip(t["config"], t["store"])}


def _text(path: Path) -> str | None:
    """The file at commit BUILD, or ``None`` where it had none."""
    rel = path.relative_to(ROOT).as_posix()
    done = subprocess.run(["git", "show", f"{BUILD}:{rel}"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(_text(path)))


def _wide(path: Path, metric: str) -> pd.DataFrame:
    t = _read(path).melt(id_vars="seed", var_name="strategy", value_name="nauc")
    return t.assign(metric=metric)[COLUMNS]


def six(stores: dict[str, str]) -> None:
    for experiment, (_, metrics) in SIX.items():
        kept = [m for m in metrics if _text(RESULTS / experiment / m / "runs.csv") is not None]
        if not kept:
            continue
        parts = [_read(RESULTS / experiment / m / "runs.csv")[["strategy", "seed", "nauc"]].assign(metric=m)[COLUMNS]
                 for m in kept]
        found = re.search(r"pool (\d+) items", _text(RESULTS / experiment / kept[0] / "section.md"))
        task = "regression" if metrics[0] in ("rmse", "mae") else "classification"
        note = (f"back-filled from results/{experiment}/{{{','.join(kept)}}}/runs.csv of the build at "
                f"commit {BUILD}")
        lost = [m for m in metrics if m not in kept]
        if lost:
            note += f"; per-seed {', '.join(lost)} not kept by that build"
        Tables(experiment, task, pd.concat(parts, ignore_index=True), int(found.group(1)) if found else None,
               stores.get(experiment, STORE_1), committed=True, note=note).save(RESULTS)


def lu(stores: dict[str, str]) -> None:
    import lu2023

    rows = lu2023.frames()
    old = RESULTS / "lu2023"
    for name in LU_SETS:
        n = min(len(rows[name]), lu2023.MAX_ITEMS)
        pool = n - _count(0.4, n, "test")  # the SVM configs: test_size 0.4, no validation split
        e = f"lu2023-{name}-svm"
        Tables(e, "classification", _wide(old / f"{name}-svm-nauc.csv", "accuracy"), pool, stores[e],
               committed=True, note=f"back-filled from results/lu2023/{name}-svm-nauc.csv of the build at "
               f"commit {BUILD}; pool recomputed from the data").save(RESULTS)
        e = f"lu2023-{name}-glm"
        metrics = [m for m in ("accuracy", "log_loss", "roc_auc", "average_precision")
                   if _text(old / f"{name}-glm-nauc-{m}.csv") is not None]
        long = pd.concat([_wide(old / f"{name}-glm-nauc-{m}.csv", m) for m in metrics], ignore_index=True)
        Tables(e, "classification", long, None, stores[e], committed=True,
               note=f"back-filled from results/lu2023/{name}-glm-nauc-*.csv of the build at commit "
               f"{BUILD}; per-seed average_precision not kept by that build").save(RESULTS)


if __name__ == "__main__":
    stores = _stores()
    six(stores)
    lu(stores)
