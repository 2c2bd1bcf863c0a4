"""The L2 strength shared by the models alloop fits itself (GLMs, MLP): one of s, C, alpha."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from alloop.config.base import Section


class Strength(Section):
    """``s`` (log λ), or scikit-learn's ``C`` or Ridge's ``alpha``; and automatic regularity."""

    s: float | None = Field(None, description="log of the L2 strength λ")
    C: float | None = Field(None, gt=0.0, description="scikit-learn style inverse strength (s = −log C)")
    alpha: float | None = Field(None, gt=0.0, description="Ridge style strength (s = log alpha)")
    auto_regularity: bool | None = Field(
        None, description="choose s each round on validation data (default: on for GLMs)"
    )

    @model_validator(mode="after")
    def _one_strength(self) -> Strength:
        given = [k for k in ("s", "C", "alpha") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of s, C, alpha; got {given}")
        return self

    def log_lambda(self) -> float:
        """s = log λ from whichever of s, C, alpha is given (0 when none is).

        Examples
        --------
        >>> from alloop.config.model import GLMConfig
        >>> GLMConfig(kind="logistic", C=1.0).log_lambda()
        -0.0
        """
        if self.C is not None:
            return -math.log(self.C)
        if self.alpha is not None:
            return math.log(self.alpha)
        return 0.0 if self.s is None else self.s
