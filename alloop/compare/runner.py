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
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alloop.compare.config import CompareConfig, load_compare_config
from alloop.compare.runs import (
    FULL_DATA,
    LOOP,
    config_params,
    discard_run,
    identity,
    search_runs,
)
from alloop.config import parse_config

#: where the (strategy, seed) tasks run
BACKENDS = ("process", "ray")


class CompareError(RuntimeError):
    """Some (strategy, seed) runs failed; the others finished and are in MLflow."""


@dataclass(frozen=True)
class Task:
    """One unit of work for a worker: a loop run, or the full-data fit of a seed."""

    kind: str  # LOOP or FULL_DATA
    seed: int
    config: dict[str, Any]
    strategy: str | None = None
    resume: bool = False

    @property
    def label(self) -> str:
        return f"{self.strategy} seed {self.seed}" if self.kind == LOOP else f"full data seed {self.seed}"


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
    cfg: CompareConfig, client: Any, experiment_id: str, force: bool = False
) -> tuple[list[Task], list[dict[str, Any]]]:
    """The tasks a compare still has to run, and the pairs it can skip.

    Discards (marks deleted) unfinished MLflow runs that cannot be resumed, and removes label
    stores that do not belong to a resumable run.
    """
    tasks: list[Task] = []
    skipped: list[dict[str, Any]] = []

    fulls = search_runs(client, experiment_id, FULL_DATA)
    for seed in cfg.seeds:
        config = cfg.full_data_config(seed)
        wanted = identity(_full_params(config))
        same = [r for r in fulls if identity(r.data.params) == wanted]
        done = [r for r in same if r.info.status == "FINISHED"]
        if done and not force:
            skipped.append({"kind": FULL_DATA, "strategy": None, "seed": seed, "run_id": done[-1].info.run_id})
            continue
        for run in same:
            discard_run(client, experiment_id, run.info.run_id)
        tasks.append(Task(FULL_DATA, seed, config.model_dump(mode="json")))

    loops = search_runs(client, experiment_id, LOOP)
    for strategy, seed in cfg.pairs():
        config = cfg.run_config(strategy, seed)
        wanted = identity(config_params(config))
        same = [r for r in loops if identity(r.data.params) == wanted]
        done = [r for r in same if r.info.status == "FINISHED"]
        store = str(config.store_path())
        if done and not force:
            skipped.append({"kind": LOOP, "strategy": strategy, "seed": seed, "run_id": done[-1].info.run_id})
            continue
        exists, stored = _stored_run_id(store)
        open_ids = {r.info.run_id for r in same if r.info.status != "FINISHED"}
        resume = exists and not force and (stored is None or stored in open_ids)
        for run in same:
            if not (resume and run.info.run_id == stored):
                discard_run(client, experiment_id, run.info.run_id)
        if exists and not resume:
            from alloop.store import remove_store

            remove_store(store)
        tasks.append(Task(LOOP, seed, config.model_dump(mode="json"), strategy, resume))
    return tasks, skipped


def _full_params(config: Any) -> dict[str, str]:
    """A full-data run's params: its config without the (unused) strategy and store."""
    return {k: v for k, v in config_params(config).items() if not k.startswith(("strategy.", "store."))}


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:  # re-parented: the compare process is gone
            os._exit(1)
        time.sleep(0.5)


def _init_worker(parent_pid: int, threads: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


#: warnings about the code, not the results (e.g. a library's deprecations on first import)
_NOT_ABOUT_RESULTS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning)


def _warning_summary(caught: list[warnings.WarningMessage]) -> dict[str, Any]:
    """How many warnings a run raised and the first of them (workers keep the console quiet)."""
    caught = [w for w in caught if not issubclass(w.category, _NOT_ABOUT_RESULTS)]
    if not caught:
        return {"warnings": 0}
    first = caught[0]
    return {"warnings": len(caught), "warning": f"{first.category.__name__}: {first.message}"}


def _run_loop(config_data: dict[str, Any], tracking_uri: str, resume: bool) -> dict[str, Any]:
    from alloop.experiment import build_loop

    start = time.perf_counter()
    loop = None
    try:
        config = parse_config(config_data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = build_loop(config, tracking_uri=tracking_uri, progress=False)
            result = loop.run(resume=resume)
        noted = _warning_summary(caught)
        if noted["warnings"] and result.run_id is not None:
            loop.tracker.tag_run(result.run_id, {"alloop.warnings": str(noted["warnings"]),
                                                 "alloop.warning": noted["warning"][:5000]})
        last = result.curve.iloc[-1]
        return {
            "run_id": result.run_id, "stop_reason": result.stop_reason,
            "labels": int(last["labels"]), "metric": loop.metric,
            "value": float(last[loop.metric]), "seconds": time.perf_counter() - start, **noted,
        }
    except Exception as exc:  # returned, not raised: one failed pair must not stop the others
        run_id = None if loop is None else loop.run_id
        if run_id is not None:
            with suppress(Exception):  # the error to report is the one above
                loop.tracker.end_run(run_id, "FAILED")
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "run_id": run_id}
    finally:
        if loop is not None:
            loop.store.close()


def fit_full_data(config: Any) -> tuple[dict[str, float], int]:
    """Test metrics of the config's model fitted on every item of the pool, and the pool size.

    The reference a learning curve is measured against: what labeling everything with the
    true labels would give. The model is fitted exactly as the loop fits it each round,
    automatic regularity included, so the two are comparable.
    """
    from alloop.experiment import build_loop, prepare_data
    from alloop.metrics import evaluate

    truth = prepare_data(config).truth
    loop = build_loop(config, progress=False, track=False)
    try:
        pool = loop.pool
        pool.add_labels(pool.ids, [truth[i] for i in pool.ids.tolist()])
        model = loop.fit()  # the loop's own fit: same regularity rule, same solver
        return evaluate(model, loop.X_test, loop.y_test, loop.classes, loop.metrics), len(pool)
    finally:
        loop.store.close()


def _run_full_data(config_data: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    from alloop.tracking import MlflowTracker

    start = time.perf_counter()
    try:
        config = parse_config(config_data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics, n = fit_full_data(config)
        seconds = time.perf_counter() - start
        tracker = MlflowTracker(config.tracking.experiment or config.name, tracking_uri)
        with tracker.one_off_run(f"full-data-seed{config.seed}", tags={"alloop": FULL_DATA}) as run:
            run.log_metrics({**metrics, "labels": float(n), "fit_seconds": seconds}, step=0)
            run.log_params(_full_params(config))
        return {"run_id": run.run_id, "labels": n, "seconds": seconds, "values": metrics,
                **_warning_summary(caught)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def _run_task(task: Task, uri: str) -> dict[str, Any]:
    if task.kind == LOOP:
        return _run_loop(task.config, uri, task.resume)
    return _run_full_data(task.config, uri)


def _in_processes(
    tasks: list[Task], uri: str, jobs: int, threads: int, address: str | None = None
) -> Iterator[tuple[Task, dict[str, Any]]]:
    """(task, result) as each finishes, run in ``jobs`` spawned processes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context,
        initializer=_init_worker, initargs=(os.getpid(), threads),
    ) as pool:
        futures = {pool.submit(_run_task, t, uri): t for t in tasks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker process itself died
                result = {"error": f"{type(exc).__name__}: {exc}", "traceback": ""}
            yield futures[future], result


def _ray_task(task: Task, uri: str, threads: int, cwd: str) -> dict[str, Any]:
    """One task on a Ray worker: the compare's working directory and thread count, then run."""
    import torch
    from threadpoolctl import threadpool_limits

    if os.path.isdir(cwd):  # a local cluster or a shared file system: relative paths resolve
        os.chdir(cwd)
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return _run_task(task, uri)


def _on_ray(
    tasks: list[Task], uri: str, jobs: int, threads: int, address: str | None = None
) -> Iterator[tuple[Task, dict[str, Any]]]:
    """(task, result) as each finishes, run as Ray tasks (1 CPU each), ``jobs`` at a time.

    Connects to ``address`` (default: the Ray this process is connected to, else a new local
    cluster). A Ray task is not retried: a pair whose worker died is failed, and resumed by the
    next compare, exactly as with worker processes.
    """
    import ray

    from alloop.scale.cluster import connect

    connect(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
    cwd = os.getcwd()
    waiting = list(tasks)
    running: dict[Any, Task] = {}
    while waiting or running:
        while waiting and len(running) < jobs:
            task = waiting.pop(0)
            running[remote.remote(task, uri, threads, cwd)] = task
        done, _ = ray.wait(list(running), num_returns=1)
        task = running.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # the worker died, or Ray could not run the task
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": ""}
        yield task, result


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
        A compare YAML (see :mod:`alloop.compare.config`) or a parsed one.
    jobs : int
        Runs at once (worker processes, or Ray tasks in flight).
    force : bool
        Rerun pairs that already finished (their old MLflow runs are marked deleted).
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
    uri = resolve_tracking_uri(tracking_uri or cfg.base.tracking.uri)
    console = Console(stderr=True, quiet=not progress, highlight=False)
    _check_strategies(cfg)
    # The parent creates the experiment (and a fresh store's schema) before any worker writes.
    tracker = MlflowTracker(cfg.experiment, uri)
    outcomes: list[dict[str, Any]] = []
    with _exclusive(cfg.store_dir):
        tasks, skipped = plan(cfg, tracker.client, tracker.experiment_id, force)
        outcomes += [{**s, "action": "skipped"} for s in skipped]
        console.print(
            f"{cfg.experiment}: {len(tasks)} runs to do, {len(skipped)} already finished "
            f"({len(cfg.strategy_names)} strategies × {len(cfg.seeds)} seeds, {jobs} jobs"
            + (", on Ray)" if backend == "ray" else ")")
        )
        failures = []
        if tasks:
            run = _on_ray if backend == "ray" else _in_processes
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
