"""The regularity s as round metrics: one number ``s``, or ``s0``, ``s1``, … for a vector s.

A model's ``s`` is a float (one λ = e^s) or a vector (e.g. the hierarchical model's
(s_0, s_1)); the loop logs it per round and reads it back on resume through these two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["s_from_metrics", "s_metrics"]


def s_metrics(s: Any) -> dict[str, float]:
    """``{"s": s}`` for a scalar, ``{"s0": s[0], "s1": s[1], …}`` for a vector.

    Examples
    --------
    >>> s_metrics(0.5), s_metrics([1.0, -2.0])
    ({'s': 0.5}, {'s0': 1.0, 's1': -2.0})
    """
    values = np.asarray(s, dtype=np.float64)
    if values.ndim == 0:
        return {"s": float(values)}
    return {f"s{i}": float(v) for i, v in enumerate(values.reshape(-1))}


def s_from_metrics(metrics: Mapping[str, Any], default: Any = None) -> Any:
    """The s a round logged with :func:`s_metrics` (a float or an array), else ``default``.

    Examples
    --------
    >>> s_from_metrics({"s": 0.5}), s_from_metrics({"s0": 1.0, "s1": -2.0}).tolist()
    (0.5, [1.0, -2.0])
    """
    if "s" in metrics:
        return metrics["s"]
    entries = []
    while f"s{len(entries)}" in metrics:
        entries.append(float(metrics[f"s{len(entries)}"]))
    return np.asarray(entries) if entries else default
