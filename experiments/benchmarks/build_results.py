"""Build experiments/RESULTS.md from the MLflow runs of the benchmark suite (no number typed in).

    python experiments/benchmarks/build_results.py --tracking-uri sqlite:////tmp/bench/mlflow.db

Several stores may be given, in order of preference (``--tracking-uri NEW OLD``): each experiment
is read from the first store that has finished runs of it, and the page says which store that was.

Each experiment read from a store is also kept in the repository as a per-seed table,
``experiments/results/<experiment>/nauc.csv`` (strategy, seed, metric, nauc) with a small
``meta.json`` (task, pool size, seeds, the store); an experiment that no given store has is built
from those committed files instead, and the page says per experiment where its numbers came
from. So the page can be rebuilt with the stores gone (no ``--tracking-uri`` at all).

``--rerun URI``: a store with new runs of some strategies (the portfolio after a change to it,
``alloop compare CONFIG --only portfolio``); they replace those strategies' runs wherever else
the experiment's numbers come from, and the page and ``meta.json`` say which came from where.

This file is past 400 lines because it is the generator of one page: each part of the page (the
six sets, the portfolio against its best arm, the Lu et al. protocol, the wall times) is one
function here; the per-seed tables and where they come from are in ``nauc_tables.py``.

For each benchmark experiment found in the tracking store it writes ``alloop report`` files per
metric into ``experiments/results/<experiment>/<metric>/`` (reused as committed for the others)
and assembles one page:
the hand-written text of ``experiments/results/preamble.md``, then generated tables -- every set
on accuracy and on metrics the majority class cannot fool (log-loss, ROC-AUC, average precision),
the portfolio against its best arm, and Lu et al.'s binary protocol beside the paper's figures
(``lu2023/paper_aubc.csv``, quoted from the paper's repository, not computed here). Experiments
in neither a store nor the committed tables are listed as not run. The wall time of each config
comes from the ``timings.tsv`` that ``run_suite.sh`` writes beside the tracking database, and its
CPU seconds from a ``cpu.json`` there ({config: CPU seconds of the compare and its workers}) when
one exists; configs whose experiment came from committed tables keep their rows of the
committed ``results/timings.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alloop.compare.report import report, section
from alloop.compare.stats import paired_wilcoxon
from alloop.metrics import LOWER_IS_BETTER

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nauc_tables import Tables, load  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
PAGE = ROOT / "experiments" / "RESULTS.md"
HERE = Path(__file__).resolve().parent

SIX = {  # experiment → (config, metrics reported)
    "bench-breast-cancer": ("breast_cancer", ["accuracy", "log_loss", "roc_auc", "average_precision"]),
    "bench-credit-cards": ("credit_cards", ["accuracy", "log_loss", "roc_auc", "average_precision"]),
    "bench-fine-foods": ("fine_foods", ["accuracy", "log_loss", "roc_auc"]),
    "bench-digits": ("digits", ["accuracy", "log_loss", "roc_auc"]),
    "bench-diabetes": ("diabetes", ["rmse", "mae"]),
    "bench-check-times": ("check_times", ["rmse", "mae"]),
}
LU_SETS = ["wdbc", "breast", "diabetes", "spam", "creditcard", "birthwt", "affairs", "credit_cards",
           "swisslabor", "mroz"]
LU_METRICS = ["accuracy", "log_loss", "roc_auc", "average_precision"]
PORTFOLIO_ARMS = {"classification": ["margin", "coreset", "random"],
                  "regression": ["coreset", "egl", "random"]}


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


class Build:
    """One build of the page: the stores in order of preference, the rerun stores (whose
    strategies replace the same strategies' runs, :func:`nauc_tables.overlay`), the results
    folder, and ``sources``, each experiment the page shows with where its numbers came from."""

    def __init__(self, uris: list[str], results: Path = RESULTS, page: Path = PAGE,
                 reruns: list[str] = ()) -> None:
        self.uris, self.results, self.page = list(uris), Path(results), Path(page)
        self.reruns = list(reruns)
        self.sources: dict[str, Tables] = {}

    def load(self, experiment: str, metrics: list[str]) -> Tables | None:
        """The experiment from the first store that has it, else from the committed tables,
        with the strategies of the rerun stores put in place."""
        return load(experiment, self.uris, metrics, self.results, self.reruns)

    def use(self, tables: Tables) -> Tables:
        """Record that the page shows ``tables``; what a store of this build gave is kept in the
        repository."""
        self.sources[tables.experiment] = tables
        if not tables.committed or set(tables.rerun.values()) & set(self.reruns):
            tables.save(self.results)
        return tables

    def _store(self, uri: str) -> str:
        if uri in self.uris:
            return f"store {self.uris.index(uri) + 1} (`{uri}`)"
        return f"rerun store `{uri}`" if uri in self.reruns else f"store `{uri}` of an earlier build"

    def origin(self, tables: Tables) -> str:
        """Where the numbers came from, in words."""
        if not tables.committed:
            words = self._store(tables.store)
        else:
            earlier = f"store `{tables.store}`" if tables.store else "an unnamed store"
            words = f"committed tables (`results/<experiment>/nauc.csv`), from an earlier build of {earlier}"
        by_store: dict[str, list[str]] = {}
        for strategy, uri in tables.rerun.items():
            by_store.setdefault(uri, []).append(strategy)
        return words + "".join(f", with {', '.join(names)} rerun in {self._store(uri)}"
                               for uri, names in by_store.items())

    def where(self, names: dict[str, Tables]) -> str:
        """One line grouping ``{shown name: tables}`` by where their numbers came from."""
        groups: dict[str, list[str]] = {}
        for name, t in names.items():
            groups.setdefault(self.origin(t), []).append(name)
        return "Numbers from " + "; ".join(f"{o}: {', '.join(n)}" for o, n in groups.items()) + "."


def metric_table(tables: Tables, metrics: list[str]) -> str:
    """One row per strategy: nAUC of each metric (mean over seeds) and p vs random."""
    per_metric = {m: tables.nauc(m) for m in metrics if m in tables}
    first = per_metric[metrics[0]]
    lower0 = metrics[0] in LOWER_IS_BETTER
    order = first.mean().sort_values(ascending=lower0).index.tolist()
    head = ["strategy"] + [f"nAUC {m} {'↓' if m in LOWER_IS_BETTER else '↑'} (p vs random)" for m in per_metric]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in order:
        cells = [s]
        for m, t in per_metric.items():
            mean = t[s].mean()
            p = paired_wilcoxon(t[s], t["random"]) if s != "random" and "random" in t else math.nan
            better = (mean < t["random"].mean()) == (m in LOWER_IS_BETTER) if "random" in t else None
            mark = "" if not np.isfinite(p) or p >= 0.05 else (" **+**" if better else " **−**")
            cells.append(f"{mean:.4f} ({_p(p)}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = len(first)
    return "\n".join(lines) + (
        f"\n\n{seeds} seeds paired. **+** / **−**: better / worse than random at p < 0.05 "
        f"(two-sided Wilcoxon signed-rank on the nAUC; smallest possible p with {seeds} seeds: "
        f"{2 / 2**seeds:.2g}).\n"
    )


def portfolio_rows(name: str, tables: Tables, metrics: list[str]) -> list[str]:
    arms = PORTFOLIO_ARMS[tables.task]
    rows = []
    for m in metrics:
        if m not in tables:
            continue
        t = tables.nauc(m)
        if "portfolio" not in t or not all(a in t for a in arms):
            continue
        lower = m in LOWER_IS_BETTER
        means = t[arms].mean()
        best = means.idxmin() if lower else means.idxmax()
        diff = t["portfolio"].mean() - t[best].mean()
        p = paired_wilcoxon(t["portfolio"], t[best])
        worse = (diff > 0) == lower and diff != 0
        verdict = ("**worse** (p < 0.05)" if worse and p < 0.05 else
                   "better (p < 0.05)" if not worse and p < 0.05 else "no significant difference")
        p_rand = paired_wilcoxon(t["portfolio"], t["random"])
        rows.append(f"| {name} | {m} | {best} {t[best].mean():.4f} | {t['portfolio'].mean():.4f} | "
                    f"{diff:+.4f} | {_p(p)} | {verdict} | {_p(p_rand)} | {len(t)} |")
    return rows


def six_sets(build: Build, parts: list[str], full_tables: bool = True, reuse: bool = False) -> None:
    results = build.results
    found = {e: build.load(e, metrics) for e, (_, metrics) in SIX.items()}
    parts += ["## Six benchmark sets: every metric", ""]
    # a rerun that finished fewer seeds than the kept 8-seed section is not shown in its place
    partial = []
    for e, tables in found.items():
        if tables is None or not (results / "8-seeds" / e / "section.md").exists():
            continue
        seeds = len(tables.nauc(SIX[e][1][0]))
        if seeds < 8:
            partial.append(f"{e} ({seeds} seeds finished every strategy)")
            found[e] = None
    if partial:
        parts += [f"Stopped before 8 seeds, so not shown: {', '.join(partial)}.", ""]
    missing = [e for e, r in found.items() if r is None]
    if missing:
        parts += [f"Not shown from this run: {', '.join(missing)}.", ""]
    # a set not rerun keeps its last committed 8-seed section (results/8-seeds/<set>/section.md)
    kept = [e for e in missing if (results / "8-seeds" / e / "section.md").exists()]
    portfolio = ["| set | metric | best arm (nAUC) | portfolio | portfolio − best arm | p | verdict | "
                 "p vs random | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    shown = {e: build.use(t) for e, t in found.items() if t is not None}
    for experiment, tables in shown.items():
        wanted = SIX[experiment][1]
        metrics = [m for m in wanted if m in tables]
        parts += [f"### {experiment}", "", build.where({experiment: tables}), "", metric_table(tables, metrics)]
        lost = [m for m in wanted if m not in tables]
        if lost and tables.committed:
            parts += [f"Not in the committed tables (the earlier build did not keep their per-seed "
                      f"values): {', '.join(lost)}.", ""]
        portfolio += portfolio_rows(experiment, tables, metrics)
    if kept:
        parts += ["## Sets not rerun for this page: the 8-seed results", "",
                  f"{', '.join(kept)} did not fit this run of the suite (see \"What ran, and what did "
                  "not\"); their 8-seed sections from an earlier page (commit 572d342, the same configs "
                  "at 8 seeds) are kept, with their files under `results/8-seeds/`.", ""]
        parts += [(results / "8-seeds" / e / "section.md").read_text() for e in kept]
    parts += ["## Portfolio against its best arm", "",
              "The portfolio (strategies/portfolio.py: the first arm listed leads until another's "
              "leave-items-out validation credit is significantly better across rounds; over margin, "
              "core-set and random on classification, margin first; random, EGL and core-set on "
              "regression, random first) against whichever of its arms has the best mean nAUC on "
              "that set and metric, chosen after the fact (which favours the arm). p: two-sided "
              "Wilcoxon signed-rank test over seeds on the nAUC.", "", *portfolio, ""]
    parts += ["## Six benchmark sets: full tables", ""]
    if not full_tables:
        return
    committed = [e for e, t in shown.items() if t.committed]
    if committed:
        parts += [f"The sections of {', '.join(committed)} are the committed files of their earlier "
                  "build (`results/<set>/<metric>/section.md`).", ""]
    for experiment, tables in shown.items():
        if tables.rerun:
            parts += [f"In the sections of {experiment} below, the rows and curves of "
                      f"{', '.join(tables.rerun)} are from before their rerun (the tables above have "
                      "their rerun figures).", ""]
        for m in SIX[experiment][1][:2]:  # accuracy and log-loss (rmse and mae)
            out = results / experiment / m
            cached = out / "section.md"
            if tables.committed or tables.rerun or (reuse and cached.exists()):  # an earlier build's
                if cached.exists():
                    parts.append(cached.read_text())
                continue
            if m not in tables:
                continue
            rep = report(experiment, tables.store, out, metric=m, log=False)
            figure = Path(os.path.relpath(out / "learning_curves.png", build.page.parent)).as_posix()
            text = section(rep, figure, heading="###").replace(f"### {experiment}", f"### {experiment}: {m}", 1)
            cached.write_text(text)
            parts.append(text)


def lu2023(build: Build, parts: list[str]) -> None:
    paper = pd.read_csv(HERE / "lu2023" / "paper_aubc.csv").set_index("set")
    parts += ["## Lu, Li & Lin (2023) binary protocol", ""]
    head = ("| set | pool | seeds | uniform AUBC | margin AUBC | margin − uniform | p | paper: uniform | "
            "paper: US-C | paper: US-C − uniform |")
    svm = [head, "|" + "---|" * (head.count("|") - 1)]
    not_run = []
    svm_tables, glm_tables = {}, {}
    for name in LU_SETS:
        tables = build.load(f"lu2023-{name}-svm", LU_METRICS)
        glm = build.load(f"lu2023-{name}-glm", LU_METRICS)
        if glm is not None:
            glm_tables[name] = build.use(glm)
        if tables is None:
            not_run.append(f"{name} (SVM)")
            continue
        svm_tables[name], t = build.use(tables), tables.nauc("accuracy")
        pool = tables.labels if tables.labels is not None else math.nan
        diff = t["margin"].mean() - t["random"].mean()
        p = paired_wilcoxon(t["margin"], t["random"])
        if name in paper.index:
            row = paper.loc[name]
            ref = f"{row['uniform']:.4f} | {row['us_c']:.4f} | {row['us_c'] - row['uniform']:+.4f}"
        else:
            ref = "— | — | —"
        svm.append(f"| {name} | {pool} | {len(t)} | {t['random'].mean():.4f} | {t['margin'].mean():.4f} | "
                   f"{diff:+.4f} | {_p(p)} | {ref} |")
    parts += [f"{model}: {build.where(t)}" for model, t in (("RBF-SVM", svm_tables),
                                                              ("Logistic GLM", glm_tables)) if t]
    parts += ["", "### RBF-SVM: uncertainty (margin) against uniform", "", *svm, ""]
    if not_run:
        parts += [f"Not run: {', '.join(not_run)}.", ""]
    for metric in ("accuracy", "roc_auc", "log_loss"):
        tables = {n: g.nauc(metric) for n, g in glm_tables.items() if metric in g}
        if not tables:
            continue
        strategies = sorted(set().union(*[set(t.columns) for t in tables.values()]))
        lower = metric in LOWER_IS_BETTER
        head = ["set", "seeds", *strategies]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        wins = {s: [0, 0] for s in strategies}  # [better than random at p<.05, worse]
        for n, t in tables.items():
            cells = [n, str(len(t))]
            best = t.mean().idxmin() if lower else t.mean().idxmax()
            for s in strategies:
                if s not in t:
                    cells.append("—")
                    continue
                p = paired_wilcoxon(t[s], t["random"]) if s != "random" else math.nan
                better = (t[s].mean() < t["random"].mean()) == lower
                mark = "" if not np.isfinite(p) or p >= 0.05 else ("+" if better else "−")
                if mark:
                    wins[s][0 if better else 1] += 1
                value = f"{t[s].mean():.4f}{mark}"
                cells.append(f"**{value}**" if s == best else value)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("| better / worse than random (p < 0.05) | | "
                     + " | ".join(f"{wins[s][0]} / {wins[s][1]}" for s in strategies) + " |")
        parts += [f"### Logistic GLM, every strategy: nAUC of {metric} ({'lower' if lower else 'higher'} is better)",
                  "", *lines, "",
                  "Bold: best mean on the set. +/−: better/worse than random, two-sided Wilcoxon "
                  "signed-rank on the nAUC over seeds, p < 0.05.", ""]
    missing = [n for n in LU_SETS if n not in glm_tables]
    if missing:
        parts += [f"GLM not run: {', '.join(missing)}.", ""]


def _folder(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///")).parent


def _experiment_of(config: str) -> str | None:
    path = ROOT / config.split(" --only ")[0]  # a rerun of some strategies: "CONFIG --only NAME"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip()
    return None


def timings(build: Build, parts: list[str]) -> None:
    uris, results = build.uris, build.results

    def source(config: str) -> Tables | None:
        return build.sources.get(_experiment_of(config) or "")
    rows = []
    for uri in uris:
        path = _folder(uri) / "timings.tsv"
        if not path.exists():
            continue
        # run_suite.sh writes config, wall s, finished at, CPU s (older files lack the CPU column)
        t = pd.read_csv(path, sep="\t", names=["config", "seconds", "finished", "cpu_seconds"])
        cpu_file = _folder(uri) / "cpu.json"  # CPU seconds sampled from outside, where no column
        sampled = json.loads(cpu_file.read_text()) if cpu_file.exists() else {}
        t["cpu_seconds"] = t["cpu_seconds"].fillna(t["config"].map(sampled))
        # a resumed config adds up; its CPU is known only if every part's is
        t = t.groupby("config", sort=False).agg(
            seconds=("seconds", "sum"), cpu_seconds=("cpu_seconds", lambda c: c.sum(min_count=len(c)))
        ).reset_index()
        t["store"] = uri
        # only the configs whose runs the page read from this store
        t = t[[(s := source(c)) is not None and not s.committed and s.store == uri for c in t["config"]]]
        rows.append(t)
    kept = results / "timings.csv"  # the rows an earlier build wrote, for experiments read from it
    if kept.exists():
        t = pd.read_csv(kept)
        t = t[[(s := source(c)) is not None and s.committed and s.store == u
               for c, u in zip(t["config"], t["store"])]]
        rows.append(t)
    if not (rows := [t for t in rows if len(t)]):
        return
    t = pd.concat(rows, ignore_index=True)
    t.to_csv(results / "timings.csv", index=False)
    stores = [u for u in uris if u in set(t["store"])]
    earlier = [u for u in dict.fromkeys(t["store"]) if u not in uris]
    label = {u: f"store {uris.index(u) + 1}" for u in stores}
    label |= {u: f"earlier `{_folder(u)}`" for u in earlier}

    def cpu(v: float) -> str:
        return "— | —" if not np.isfinite(v) else f"{v:.0f} | {v / 2:.0f}"

    legend = [f"{label[u]}: `{u}`" for u in stores]
    if earlier:
        legend.append("earlier: " + ", ".join(f"`{u}`" for u in earlier) + ", stores of earlier builds "
                      "(their rows kept in `results/timings.csv` for the experiments read from committed tables)")
    parts += ["## Wall time of each config", "",
              "`alloop compare --jobs 2` under `nice -n 19`, on 2 CPU cores shared with other work, so "
              "the wall time is an upper bound on an idle machine. CPU s is the processor time of the "
              "compare and its two workers (recorded by run_suite.sh, or sampled every 5 s for configs run "
              "before it recorded CPU); CPU s / 2 estimates the wall time on "
              "2 idle cores. A config resumed with more seeds adds up. "
              + "; ".join(legend) + ".", "",
              "| config | store | wall s | CPU s | CPU s / 2 |", "|---|---|---|---|---|",
              *[f"| {r.config} | {label[r.store]} | {r.seconds} | {cpu(r.cpu_seconds)} |"
                for r in t.itertuples()],
              f"| **total** | | {t['seconds'].sum()} | "
              f"{'≥ ' if t['cpu_seconds'].isna().any() else ''}{cpu(t['cpu_seconds'].sum(min_count=1))} |",
              ""]


def build_page(uris: list[str], results: Path = RESULTS, page: Path = PAGE,
               full_tables: bool = True, reuse: bool = False, reruns: list[str] = ()) -> str:
    """The page's text, from the stores ``uris`` (in order of preference) and ``results``.

    Writes the per-experiment tables of what it read from a store (and the ``alloop report``
    files when ``full_tables``) into ``results``; the page itself is returned, not written.
    """
    build = Build(uris, results, page, reruns)
    parts = ["# Strategy comparison", "", (build.results / "preamble.md").read_text().strip(), ""]
    six_sets(build, parts, full_tables=full_tables, reuse=reuse)
    lu2023(build, parts)
    timings(build, parts)
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", nargs="*", default=[],
                        help="MLflow store(s), in order of preference per experiment (none: build "
                             "from the committed tables)")
    parser.add_argument("--rerun", nargs="*", default=[],
                        help="MLflow store(s) of reruns of some strategies: their runs replace those "
                             "strategies' runs wherever else an experiment's numbers come from")
    parser.add_argument("--page", type=Path, default=PAGE, help="where to write the page")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the results folder (committed tables, report files, preamble.md)")
    parser.add_argument("--no-full-tables", action="store_true",
                        help="leave out the per-set tables and figures (quick draft)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the per-set tables an earlier build wrote (only if those runs are unchanged)")
    args = parser.parse_args()
    text = build_page(args.tracking_uri, args.results, args.page,
                      full_tables=not args.no_full_tables, reuse=args.reuse, reruns=args.rerun)
    args.page.write_text(text)
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
