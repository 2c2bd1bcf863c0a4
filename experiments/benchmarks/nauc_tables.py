"""Per-seed nAUC of a benchmark experiment, read from an MLflow store or from the repository.

``build_results.py`` reads each experiment from the first tracking store that has it and keeps a
compact copy of what the page needs in the repository: ``results/<experiment>/nauc.csv`` (one row
per finished run and metric: ``strategy, seed, metric, nauc``) and ``results/<experiment>/meta.json``
(task, pool size, seeds, the store it came from). When no store given has the experiment, the page
is built from these files, so it can be rebuilt after the store is gone.

A *rerun* store holds new runs of some strategies of an experiment (the portfolio after a change
to it, say): :func:`overlay` puts them in place of the same strategies' runs, and the tables
record which strategies came from where (``rerun`` in ``meta.json``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from alloop.compare.runs import Comparison, load_comparison
from alloop.compare.stats import run_statistics
from alloop.metrics import LOWER_IS_BETTER

COLUMNS = ["strategy", "seed", "metric", "nauc"]


@dataclass
class Tables:
    """The nAUC of every finished run of one experiment, per metric.

    Attributes
    ----------
    experiment : str
    task : {"classification", "regression"}
    long : DataFrame
        Columns ``strategy, seed, metric, nauc``, one row per finished run and metric.
    labels : int or None
        Pool size (labels of the full-data model), ``None`` when not known.
    store : str or None
        The tracking store the numbers were read from (for committed tables: by the earlier build).
    committed : bool
        Read from the repository's files, not from a store given to this build.
    runs : Comparison or None
        The runs themselves when read from a store (for the full per-set reports).
    note : str
        Where the numbers came from, when that is not a build from ``store`` (a back-fill).
    rerun : dict
        Strategy → the store its runs came from, for strategies rerun after ``store``'s build.

    Examples
    --------
    >>> long = pd.DataFrame({"strategy": ["random", "margin", "random"], "seed": [0, 0, 1],
    ...                      "metric": "accuracy", "nauc": [0.8, 0.9, 0.7]})
    >>> t = Tables("bench-x", "classification", long, None, "sqlite:///x.db", committed=True)
    >>> t.nauc("accuracy").to_dict()  # the seeds that every strategy finished
    {'margin': {0: 0.9}, 'random': {0: 0.8}}
    """

    experiment: str
    task: str
    long: pd.DataFrame
    labels: int | None
    store: str | None
    committed: bool
    runs: Comparison | None = None
    note: str = ""
    rerun: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(self.long["metric"]))

    def __contains__(self, metric: str) -> bool:
        return metric in set(self.long["metric"])

    def nauc(self, metric: str) -> pd.DataFrame:
        """seed × strategy table of the nAUC of ``metric``, seeds every strategy finished."""
        rows = self.long[self.long["metric"] == metric]
        return rows.pivot(index="seed", columns="strategy", values="nauc").dropna()

    def save(self, results: Path) -> None:
        """Write ``nauc.csv`` and ``meta.json`` to ``results/<experiment>/``."""
        folder = results / self.experiment
        folder.mkdir(parents=True, exist_ok=True)
        order = {m: i for i, m in enumerate(self.metrics)}
        long = self.long.assign(order=self.long["metric"].map(order))
        long = long.sort_values(["order", "strategy", "seed"], kind="stable")
        long[COLUMNS].to_csv(folder / "nauc.csv", index=False)
        meta = {"experiment": self.experiment, "task": self.task, "labels": self.labels,
                "store": self.store, "seeds": sorted(int(s) for s in set(self.long["seed"])),
                "metrics": self.metrics}
        if self.note:
            meta["note"] = self.note
        if self.rerun:
            meta["rerun"] = self.rerun
        lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items())
        (folder / "meta.json").write_text("{\n" + lines + "\n}\n")


def from_comparison(runs: Comparison, metrics: list[str], store: str) -> Tables:
    """The nAUC of ``metrics`` (those the runs logged) of every finished run in ``runs``."""
    parts = []
    for m in metrics:
        if m not in runs.curves:
            continue
        per_run = run_statistics(runs.curves, runs.full, m, m in LOWER_IS_BETTER)
        parts.append(per_run[["strategy", "seed", "nauc"]].assign(metric=m)[COLUMNS])
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    full = runs.full
    labels = int(full["labels"].iloc[0]) if "labels" in full and len(full) else None
    return Tables(runs.experiment, runs.task, long, labels, store, committed=False, runs=runs)


def from_store(experiment: str, uri: str, metrics: list[str]) -> Tables | None:
    """The experiment's tables from the store at ``uri``, or ``None`` when it has no runs of it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = load_comparison(experiment, uri)
    except ValueError:
        return None
    return from_comparison(runs, metrics, uri)


def committed(experiment: str, results: Path) -> Tables | None:
    """The tables an earlier build kept in ``results/<experiment>/``, or ``None``."""
    folder = results / experiment
    if not (folder / "nauc.csv").exists() or not (folder / "meta.json").exists():
        return None
    meta = json.loads((folder / "meta.json").read_text())
    # pandas writes floats as repr and reads them back exactly: the float64 the store gave
    long = pd.read_csv(folder / "nauc.csv")
    return Tables(experiment, meta["task"], long, meta.get("labels"), meta.get("store"),
                  committed=True, note=meta.get("note", ""), rerun=meta.get("rerun", {}))


def overlay(base: Tables, rerun: Tables) -> Tables:
    """``base`` with the runs of every strategy in ``rerun`` taken from ``rerun`` instead.

    Only ``base``'s metrics are kept (a rerun's extra metric would have no partner runs). When
    the rerun has every strategy of ``base``, it is the whole experiment and is returned as is.

    Examples
    --------
    >>> base = pd.DataFrame({"strategy": ["random", "portfolio"], "seed": 0, "metric": "accuracy",
    ...                      "nauc": [0.8, 0.7]})
    >>> new = pd.DataFrame({"strategy": ["portfolio", "portfolio"], "seed": 0,
    ...                     "metric": ["accuracy", "roc_auc"], "nauc": [0.9, 0.95]})
    >>> merged = overlay(Tables("x", "classification", base, None, "old", True),
    ...                  Tables("x", "classification", new, None, "new", False))
    >>> merged.nauc("accuracy").to_dict(), merged.metrics, merged.rerun
    ({'portfolio': {0: 0.9}, 'random': {0: 0.8}}, ['accuracy'], {'portfolio': 'new'})
    """
    strategies = set(rerun.long["strategy"])
    if set(base.long["strategy"]) <= strategies:
        return rerun
    kept = base.long[~base.long["strategy"].isin(strategies)]
    new = rerun.long[rerun.long["metric"].isin(base.metrics)]
    return replace(base, long=pd.concat([kept, new], ignore_index=True),
                   rerun=base.rerun | {s: rerun.store for s in sorted(strategies)})


def load(experiment: str, uris: list[str], metrics: list[str], results: Path,
         reruns: list[str] = ()) -> Tables | None:
    """From the first store in ``uris`` that has the experiment, else from the committed files;
    then the strategies of each store in ``reruns`` that has it put in place (:func:`overlay`)."""
    tables = next((t for uri in uris if (t := from_store(experiment, uri, metrics)) is not None),
                  None) or committed(experiment, results)
    for uri in reruns:
        new = from_store(experiment, uri, metrics)
        if new is not None:
            tables = new if tables is None else overlay(tables, new)
    return tables
