"""alloop: active-learning loops with regularity-tangent and influence-based queries.

The public API is small:

- :class:`Pool`, :class:`LabelStore`, :class:`ActiveLoop`, :class:`LoopSettings` — the loop and
  its durable state (``run()``, or ``query()`` / ``teach()`` to drive rounds yourself);
- models in :mod:`alloop.models`, strategies in :mod:`strategies`, oracles in :mod:`oracles`;
- :func:`alloop.config.load_config` and :func:`alloop.experiment.run_experiment` — the same loop
  from a YAML config (what ``alloop run`` does);
- ``alloop.compare(config, jobs=N)`` — strategies × seeds, returning a pandas DataFrame.

The names below are imported on first use, so ``import alloop.linalg`` (the math) does not
load the loop, the oracles or MLflow.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ActiveLoop": "alloop.loop",
    "LoopResult": "alloop.loop",
    "LoopSettings": "alloop.loop",
    "Queries": "alloop.loop",
    "Pool": "alloop.data.pool",
    "LabelStore": "alloop.store.label_store",
}

__all__ = ["ActiveLoop", "LabelStore", "LoopResult", "LoopSettings", "Pool", "Queries", "__version__"]


def __dir__() -> list[str]:  # the lazy names too, so dir(alloop) shows the public API
    return sorted({*globals(), *__all__, "compare"})


def __getattr__(name: str) -> Any:
    if name == "compare":  # the package is callable: alloop.compare(config, jobs=4) -> DataFrame
        return importlib.import_module("alloop.compare")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alloop' has no attribute {name!r}")
