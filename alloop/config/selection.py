"""``selection:``: the section of ``alloop select`` (influence-based data selection).

The file is an ordinary experiment config plus this section; ``strategy``, ``loop`` and
``oracle`` are accepted (a loop config can be reused) and ignored. See
:mod:`alloop.influence.selection` for the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alloop.config.errors import ConfigError, config_error, describe_validation_error
from alloop.config.experiment import ExperimentConfig
from alloop.config.loader import parse_config, read_yaml
from alloop.config.model import SklearnConfig

Method = Literal["method1", "topk", "weighted"]

#: The ``selection:`` keys; everything else in the file is the experiment config.
SECTION = "selection"


class SelectionOptions(BaseModel):
    """The ``selection:`` section of a config."""

    model_config = ConfigDict(extra="forbid")

    validation: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="fraction of the training split held out to score against (default 0.2; "
        "leave unset when data.validation_size is set)",
    )
    base: float = Field(0.6, gt=0.0, le=1.0, description="fraction of the rest used as base set")
    candidate: float = Field(0.4, gt=0.0, le=1.0, description="fraction of the rest used as candidates")
    method: Method = "method1"
    budget: int | float | None = Field(
        None, description="topk/weighted: a count (int ≥ 1) or a fraction in (0, 1] of the candidates"
    )
    solver: Literal["exact", "cg"] = Field("exact", description="how H⁻¹ is applied (alloop.linalg.solve)")
    damping: float = Field(0.0, ge=0.0, description="added to the Hessian's diagonal")
    compare_full: bool = Field(True, description="also fit base ∪ all candidates, for reference")

    @model_validator(mode="after")
    def _consistent(self) -> SelectionOptions:
        if self.base + self.candidate > 1.0 + 1e-9:
            raise ValueError(
                f"base ({self.base}) + candidate ({self.candidate}) exceed 1: they are fractions of "
                "the same items"
            )
        b = self.budget
        if isinstance(b, bool):
            raise ValueError(f"budget must be a count or a fraction; got {b!r}")
        if isinstance(b, int) and b < 1:
            raise ValueError(f"a budget count must be at least 1; got {b}")
        if isinstance(b, float) and not 0.0 < b <= 1.0:
            raise ValueError(f"a fractional budget must lie in (0, 1]; got {b} (write an int for a count)")
        if self.method == "topk" and b is None:
            raise ValueError("method 'topk' needs a budget: a count (e.g. 200) or a fraction (e.g. 0.1)")
        if self.method == "method1" and b is not None:
            raise ValueError(
                "method 'method1' keeps every candidate with a positive score and takes no budget; "
                "use method 'topk' to spend a budget"
            )
        return self


@dataclass(frozen=True)
class SelectionConfig:
    """A parsed ``alloop select`` config: the experiment part and the selection options."""

    experiment: ExperimentConfig
    selection: SelectionOptions


def parse_selection_config(data: Any, origin: str = "config") -> SelectionConfig:
    """Validate a mapping with an experiment part and a ``selection:`` section.

    Raises
    ------
    alloop.config.ConfigError
        Naming every bad field, as ``selection.budget: …`` or ``model.kind: …``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping; got {type(data).__name__}")
    data = dict(data)
    raw = data.pop(SECTION, None)
    problems: list[str] = []
    options = None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"  {SECTION}: must be a mapping; got {raw!r}")
    else:
        try:
            options = SelectionOptions.model_validate(raw)
        except ValidationError as exc:
            problems.extend(describe_validation_error(exc, SECTION, SelectionOptions.model_fields))
    try:
        experiment = parse_config(data, origin)
    except ConfigError as exc:
        problems.insert(0, str(exc).split(":\n", 1)[-1])
        experiment = None
    if experiment is not None and options is not None:
        if experiment.data.validation_size > 0 and options.validation is not None:
            problems.append(
                f"  {SECTION}.validation: data.validation_size is set ({experiment.data.validation_size}); "
                "that split is the validation set, so leave selection.validation out"
            )
        if isinstance(experiment.model, SklearnConfig):
            problems.append(
                f"  model.kind: IP-adding needs a differentiable model (logistic, linear or mlp); "
                f"got {experiment.model.kind!r}"
            )
        elif experiment.model.auto_regularity:
            problems.append(
                "  model.auto_regularity: alloop select uses the model's s as given; set s (or C, "
                "alpha) and leave auto_regularity out"
            )
    if problems:
        raise config_error(origin, problems)
    assert experiment is not None and options is not None
    return SelectionConfig(experiment, options)


def load_selection_config(path: str | Path, **overrides: Any) -> SelectionConfig:
    """Read a YAML file and validate it with :func:`parse_selection_config`."""
    return parse_selection_config(read_yaml(path, **overrides), str(path))
