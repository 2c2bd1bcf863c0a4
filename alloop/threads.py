"""How many intra-op threads a run uses when ``--threads`` is not given."""

from __future__ import annotations

import math
import os


def default_threads(cpu_count: int | None = None, load: float | None = None) -> int:
    """The idle cores, at least one: ``max(1, floor(cores − 1-minute load average))``.

    Torch and BLAS default to one thread per core, which oversubscribes a machine that other
    processes (other runs, ``alloop compare`` workers) already keep busy: there the quickstart
    took 2.9× as long as with one thread. On an idle machine this is every core, as before.
    Where the load average is unknown (Windows) it is every core.

    Examples
    --------
    >>> default_threads(cpu_count=16, load=0.3)
    15
    >>> default_threads(cpu_count=2, load=4.0)
    1
    """
    cores = (os.cpu_count() or 1) if cpu_count is None else cpu_count
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, math.floor(cores - max(load, 0.0) + 1e-9)))


def set_threads(threads: int | None) -> int:
    """Set torch's and the BLAS libraries' thread counts (``None``: :func:`default_threads`)."""
    import torch
    from threadpoolctl import threadpool_limits

    n = default_threads() if threads is None else int(threads)
    torch.set_num_threads(n)
    threadpool_limits(n)
    return n
