"""The compare's workers: one (strategy, seed) loop run, or a seed's full-data fit, per task.

Each task runs in a spawned process (or a Ray task) with one BLAS and torch thread, returns a
small result dict instead of raising (one failed pair must not stop the others), and exits
when the compare process dies.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from alloop.compare.runs import FULL_DATA, LOOP, config_params
from alloop.config import parse_config


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


def full_params(config: Any) -> dict[str, str]:
    """A full-data run's params: its config without the (unused) strategy and store."""
    return {k: v for k, v in config_params(config).items() if not k.startswith(("strategy.", "store."))}


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
            run.log_params(full_params(config))
        return {"run_id": run.run_id, "labels": n, "seconds": seconds, "values": metrics,
                **_warning_summary(caught)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def _run_task(task: Task, uri: str) -> dict[str, Any]:
    if task.kind == LOOP:
        return _run_loop(task.config, uri, task.resume)
    return _run_full_data(task.config, uri)


def in_processes(
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


def on_ray(
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
