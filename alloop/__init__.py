"""alloop: active-learning loops with regularity-tangent and influence-based queries.

The public API is small:

- :class:`Pool`, :class:`LabelStore`, :class:`ActiveLoop` — the loop and its durable state;
- :func:`load_config`, :func:`run_experiment` — the same loop from a YAML config;
- models in :mod:`alloop.models`, strategies in :mod:`strategies`, oracles in :mod:`oracles`.
"""

from alloop.data.pool import Pool
from alloop.loop import ActiveLoop, LoopResult
from alloop.store.label_store import LabelStore

__version__ = "0.1.0"

__all__ = ["ActiveLoop", "LabelStore", "LoopResult", "Pool", "__version__"]
