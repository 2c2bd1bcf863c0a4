"""``model: {kind: hierarchical}``: per-user GLMs tied to a global one (multi-user data).

Its likelihood follows the task; ``params`` are :class:`~alloop.multiuser.HierarchicalGLM`'s
(``s0``, ``s1``, ``sigma2``, ``tol``, ``max_iter``, ``hyperparameters``) and ``bounds``, the
(s_0, s_1) search box. It needs ``data.user_column`` and ``data.item_column``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alloop.config.base import Section


class HierarchicalConfig(Section):
    """The hierarchical multi-user GLM; (s_0, s_1) chosen each round on validation data."""

    kind: Literal["hierarchical"] = "hierarchical"
    auto_regularity: bool | None = Field(
        None, description="choose s each round on validation data (default: on for GLMs)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="extra constructor arguments of the model"
    )
