"""A run's fingerprint: the settings a resumed run must share with the run that wrote its store."""

from __future__ import annotations

import hashlib
from typing import Any

#: the config key behind each part of the run's fingerprint, for the resume message.
_FINGERPRINT_KEYS = {
    "seed": "seed", "strategy": "strategy.name", "pool": "data (the pool's shape)",
    "ids": "data (which items are in the pool)", "model": "model",
    "batch_size": "loop.batch_size", "batch_rule": "strategy.batch",
}


def fingerprint(
    seed: int, strategy: str, pool: Any, model: Any, batch_size: int, batch_rule: Any
) -> dict[str, Any]:
    """What identifies a run's labels: seed, strategy, pool (shape and ids), model, batch."""
    return {
        "seed": seed,
        "strategy": strategy,
        "pool": list(pool.X.shape),
        "ids": hashlib.sha1("\0".join(pool.ids.tolist()).encode()).hexdigest(),
        "model": repr(model),
        "batch_size": batch_size,
        # a rule object (e.g. a per-user quota) by its repr
        "batch_rule": batch_rule if isinstance(batch_rule, str) else repr(batch_rule),
    }


def describe_fingerprint_change(stored: dict[str, Any], now: dict[str, Any], store: str) -> str:
    """Why a run cannot resume on ``store``: each setting that changed, then what to do."""
    lines = [f"cannot resume: the label store {store} was written by a run with other settings:"]
    keys = [k for k in _FINGERPRINT_KEYS if k in stored or k in now]
    for key in keys + sorted((set(stored) | set(now)) - set(keys)):
        if stored.get(key) != now.get(key):
            was, is_ = stored.get(key), now.get(key)
            if key == "ids":  # a hash: its value says nothing to a person
                was, is_ = "other items", "these items"
            lines.append(f"  {_FINGERPRINT_KEYS.get(key, key)}: {was!r} in the store, {is_!r} now")
    lines.append(
        "Put those settings back to continue it, or start over: alloop run CONFIG --fresh "
        f"(sets {store} aside under a timestamped name), or give this run its own store.path"
    )
    return "\n".join(lines)
