"""A nested config as MLflow params: flat ``a.b.c`` keys with string values."""

from __future__ import annotations

from typing import Any


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → flat ``a.b.c`` keys with string values (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out
