"""Run strategies × seeds in parallel processes, tracked in one MLflow experiment.

What a rerun does with each (strategy, seed) pair, decided from MLflow and the label stores:

- a FINISHED parent run with the same settings: skipped (``force=True`` discards it and reruns);
- an unfinished run (the process was killed) whose label store names it: resumed, so the
  finished rounds are kept and the curve is the uninterrupted one;
- anything else: started afresh. A stale label store is removed first; compare stores only hold
  answers of the simulated oracle, which the data set reproduces.

Each pair runs in a worker process (``spawn`` start method) with one BLAS and torch thread, so a
pair's curve is the same whatever ``jobs`` is. Workers exit when the compare process dies. The
full-data reference model of each seed is fitted and logged as a run of its own.

``backend="ray"`` runs the same tasks as Ray tasks (one CPU each) on a local or remote cluster
instead of local processes: the same planning, the same curves, the same resume semantics.
A task runs in the compare's working directory when the worker has it (a local cluster or a
shared file system), so relative data, store and ``sqlite:`` tracking paths resolve alike; on a
remote cluster without a shared file system use absolute paths it can reach (and a tracking
server rather than a SQLite file). A Ray task is not retried: a worker that dies fails its pair,
and the next compare resumes it. Ray ends the tasks when the compare process dies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from alloop.compare.runs import FULL_DATA, LOOP, config_params, identity
from alloop.compare.workers import Task, full_params, in_processes, on_ray
from alloop.config.compare import CompareConfig, load_compare_config
from alloop.tracking.base import Tracker

#: where the (strategy, seed) tasks run
BACKENDS = ("process", "ray")


class CompareError(RuntimeError):
    """Some (strategy, seed) runs failed; the others finished and are in MLflow."""


# --------------------------------------------------------------------------------------------
# Planning: what is left to do
# --------------------------------------------------------------------------------------------


def _stored_run_id(target: str) -> tuple[bool, str | None]:
    """(whether the label store exists, the parent run id it records)."""
    from alloop.store import open_store, store_exists

    if not store_exists(target):
        return False, None
    with open_store(target) as store:
        return True, store.get_meta("run_id")


def plan(
    cfg: CompareConfig, tracker: Tracker, force: bool = False
) -> tuple[list[Task], list[dict[str, Any]]]:
    """The tasks a compare still has to run, and the pairs it can skip.

    Reads the comparison's runs through ``tracker.find_runs``; discards (``tracker.discard_run``)
    unfinished runs that cannot be resumed, and removes label stores that do not belong to a
    resumable run.
    """
    tasks: list[Task] = []
    skipped: list[dict[str, Any]] = []

    fulls = tracker.find_runs(FULL_DATA)
    for seed in cfg.seeds:
        config = cfg.full_data_config(seed)
        wanted = identity(full_params(config))
        same = [r for r in fulls if identity(r.params) == wanted]
        done = [r for r in same if r.status == "FINISHED"]
        if done and not force:
            skipped.append({"kind": FULL_DATA, "strategy": None, "seed": seed, "run_id": done[-1].run_id})
            continue
        for run in same:
            tracker.discard_run(run.run_id)
        tasks.append(Task(FULL_DATA, seed, config.model_dump(mode="json")))

    loops = tracker.find_runs(LOOP)
    for strategy, seed in cfg.pairs():
        config = cfg.run_config(strategy, seed)
        wanted = identity(config_params(config))
        same = [r for r in loops if identity(r.params) == wanted]
        done = [r for r in same if r.status == "FINISHED"]
        store = str(config.store_path())
        if done and not force:
            skipped.append({"kind": LOOP, "strategy": strategy, "seed": seed, "run_id": done[-1].run_id})
            continue
        exists, stored = _stored_run_id(store)
        open_ids = {r.run_id for r in same if r.status != "FINISHED"}
        resume = exists and not force and (stored is None or stored in open_ids)
        for run in same:
            if not (resume and run.run_id == stored):
                tracker.discard_run(run.run_id)
        if exists and not resume:
            from alloop.store import remove_store

            remove_store(store)
        tasks.append(Task(LOOP, seed, config.model_dump(mode="json"), strategy, resume))
    return tasks, skipped


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------


def _describe(task: Task, result: dict[str, Any]) -> str:
    if task.kind == LOOP:
        text = (f"{result['metric']} {result['value']:.4f} at {result['labels']} labels, "
                f"{result['seconds']:.1f} s{' (resumed)' if task.resume else ''}")
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result["values"].items())
        text = f"{shown} with all {result['labels']} labels"
    if result.get("warnings"):
        text += f"\n    {result['warnings']} warnings, the first: {result['warning'][:200]}"
    return text


@contextmanager
def _exclusive(folder: Path):
    """Hold a lock on the store folder: two compares of one config would run pairs twice."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one compare at a time is on the user
        yield
        return
    with open(folder / ".compare.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompareError(
                f"another alloop compare is running on {folder}; wait for it to finish"
            ) from None
        yield


def _check_strategies(cfg: CompareConfig) -> None:
    """Refuse strategies the model cannot serve before any process starts."""
    import strategies
    from alloop.experiment import build_model, prepare_data
    from strategies.base import check_compatible

    config = cfg.full_data_config(cfg.seeds[0])
    data = prepare_data(config)
    model = build_model(config, data.task, None if data.classes is None else len(data.classes))
    problems = []
    for name in cfg.strategy_names:
        try:
            check_compatible(strategies.get(name), model)
        except (ValueError, TypeError) as exc:
            problems.append(f"  {name}: {exc}")
    if problems:
        raise ValueError(
            "these strategies cannot run on this data and model; remove them from "
            "compare.strategies:\n" + "\n".join(problems)
        )


def compare(
    config: CompareConfig | str | os.PathLike[str],
    *,
    jobs: int = 1,
    force: bool = False,
    only: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    threads: int = 1,
    backend: str = "process",
    address: str | None = None,
) -> pd.DataFrame:
    """Run every (strategy, seed) pair of a compare config and summarize them.

    Parameters
    ----------
    config : CompareConfig or path
        A compare YAML (see :mod:`alloop.config.compare`) or a parsed one.
    jobs : int
        Runs at once (worker processes, or Ray tasks in flight).
    force : bool
        Rerun pairs that already finished (their old MLflow runs are marked deleted).
    only : sequence of str, optional
        Run only these of the config's strategies (the same experiment and label stores), e.g.
        ``only=["portfolio"], force=True`` reruns one strategy after a change to it.
    tracking_uri : str, optional
        Default: the config's ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else
        ``sqlite:///mlflow.db``.
    progress : bool
        Print a line as each run finishes.
    threads : int
        BLAS and torch threads per worker; more than one can make curves depend on ``jobs``.
    backend : {"process", "ray"}
        Run the pairs in local spawned processes, or as Ray tasks of one CPU each.
    address : str, optional
        ray: the cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``); default: the
        Ray this process is connected to, else a new local cluster.

    Returns
    -------
    DataFrame
        The comparison table of :func:`alloop.compare.stats.summarize`, one row per strategy,
        best first. ``frame.attrs["metric"]`` names the metric; ``frame.attrs["runs"]`` lists what was done with each pair (``ran``,
        ``resumed`` or ``skipped``), with run ids.

    Raises
    ------
    CompareError
        When some runs failed (the message has their errors; the rest are kept).

    Notes
    -----
    Worker processes are started with ``spawn``: in a script, call ``compare`` under
    ``if __name__ == "__main__":``.

    Examples
    --------
    >>> table = compare("experiments/benchmarks/digits.yaml", jobs=4)  # doctest: +SKIP
    >>> table[["strategy", "nauc_accuracy", "p_vs_random"]]  # doctest: +SKIP
    """
    from rich.console import Console

    from alloop.compare.runs import load_comparison
    from alloop.compare.stats import summarize
    from alloop.metrics import LOWER_IS_BETTER, default_metric
    from alloop.tracking import MlflowTracker, resolve_tracking_uri

    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be at least 1; got jobs={jobs}, threads={threads}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    cfg = config if isinstance(config, CompareConfig) else load_compare_config(config)
    if only is not None:
        cfg = cfg.only(list(only))
    uri = resolve_tracking_uri(tracking_uri or cfg.base.tracking.uri)
    console = Console(stderr=True, quiet=not progress, highlight=False)
    _check_strategies(cfg)
    # The parent creates the experiment (and a fresh store's schema) before any worker writes.
    tracker = MlflowTracker(cfg.experiment, uri)
    outcomes: list[dict[str, Any]] = []
    with _exclusive(cfg.store_dir):
        tasks, skipped = plan(cfg, tracker, force)
        outcomes += [{**s, "action": "skipped"} for s in skipped]
        console.print(
            f"{cfg.experiment}: {len(tasks)} runs to do, {len(skipped)} already finished "
            f"({len(cfg.strategy_names)} strategies × {len(cfg.seeds)} seeds, {jobs} jobs"
            + (", on Ray)" if backend == "ray" else ")")
        )
        failures = []
        if tasks:
            run = on_ray if backend == "ray" else in_processes
            for count, (task, result) in enumerate(
                run(tasks, uri, min(jobs, len(tasks)), threads, address), start=1
            ):
                action = "resumed" if task.resume else "ran"
                outcomes.append({"kind": task.kind, "strategy": task.strategy, "seed": task.seed,
                                 "run_id": result.get("run_id"), "action": action,
                                 "error": result.get("error")})
                if "error" in result:
                    failures.append(f"{task.label}: {result['error']}\n{result['traceback']}")
                    console.print(f"[{count}/{len(tasks)}] {task.label}: [red]failed[/] {result['error']}")
                else:
                    console.print(f"[{count}/{len(tasks)}] {task.label}: {_describe(task, result)}")
    if failures:
        raise CompareError(f"{len(failures)} of {len(tasks)} runs failed:\n" + "\n".join(failures))
    runs = load_comparison(cfg.experiment, uri).restrict(cfg.strategy_names, cfg.seeds)
    metric = cfg.compare.metric or default_metric(runs.task)
    table = summarize(runs.curves, runs.full, metric, metric in LOWER_IS_BETTER)
    table.attrs["metric"] = metric
    table.attrs["runs"] = pd.DataFrame(outcomes)
    return table
