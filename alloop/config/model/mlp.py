"""``model: {kind: mlp}``: a torch multi-layer perceptron."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from alloop.config.model.placement import Placement
from alloop.config.model.strength import Strength


class MLPConfig(Strength, Placement):
    """A multi-layer perceptron with an L2 penalty e^s/2 ‖θ‖²."""

    #: the constructor arguments of :class:`~alloop.models.mlp.MLP` (and the torch model it
    #: passes keywords to) that ``params`` may set; the rest come from the fields below
    PARAMS: ClassVar[tuple[str, ...]] = (
        "activation", "betas", "dropout", "eps", "lr_min", "max_iter", "momentum", "penalize_bias",
        "schedule", "sigma2", "tol", "track_tangent", "warm_start",
    )

    kind: Literal["mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [64], description="hidden layer widths")
    epochs: int = Field(50, gt=0, strict=True, description="training epochs per fit")
    lr: float = Field(0.05, gt=0.0, description="learning rate")
    batch_size: int = Field(64, gt=0, strict=True, description="minibatch size")
    optimizer: Literal["sgd", "adam", "lbfgs"] = Field("adam", description="sgd | adam | lbfgs")
    params: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments of the model")
