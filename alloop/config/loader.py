"""Reading a YAML file and validating it: the one way a config enters alloop.

Strategy names and options are checked here, after the schema, against the registry that
``strategies`` holds. That package is looked up when a config is loaded, never when this
package is imported: the config layer sits below the strategies (an import contract).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alloop.config.errors import (
    ConfigError,
    config_error,
    describe_validation_error,
    renamed_fields,
)
from alloop.config.experiment import ExperimentConfig
from alloop.config.strategy import StrategyConfig

#: fields renamed or moved, with the spelling to write now (old files get this, not a guess).
RENAMED = {
    ("oracle", "aggregate"): "write oracle.label_rule (latest | majority | dawid-skene)",
    ("oracle", "label_studio"): (
        "write its keys (url, token_env, project_id, title) directly under oracle, "
        "next to kind: label-studio"
    ),
}


def strategy_problems(sections: Iterable[tuple[str, StrategyConfig]]) -> list[str]:
    """``  where: message`` for each unknown strategy name or bad option among ``sections``.

    Examples
    --------
    >>> strategy_problems([("strategy", StrategyConfig(name="nope"))])[0].split(";")[0]
    "  strategy.name: unknown strategy 'nope'"
    """
    strategies = importlib.import_module("strategies")  # at load time: see the module docstring
    problems = []
    for where, section in sections:
        if section.name not in strategies.available():
            problems.append(f"  {where}.name: unknown strategy {section.name!r}; valid names: "
                            + ", ".join(strategies.available()))
            continue
        try:
            strategies.get(section.name).check_options(section.params)
        except ValueError as exc:  # StrategyOptionsError: names the option and the valid ones
            problems.append(f"  {where}.params: {exc}")
    return problems


def validate_sections(
    data: dict[str, Any], origin: str, extra: list[str] | None = None
) -> ExperimentConfig:
    """The experiment part of ``data``, validated; every problem (and ``extra``) in one error."""
    problems = [*(extra or []), *renamed_fields(data, RENAMED)]
    config = None
    if not problems:
        try:
            config = ExperimentConfig.model_validate(data)
        except ValidationError as exc:
            problems += describe_validation_error(exc)
        else:
            problems += strategy_problems([("strategy", config.strategy)])
    if problems or config is None:
        raise config_error(origin, problems)
    return config


def parse_config(data: Any, origin: str = "config") -> ExperimentConfig:
    """Validate a mapping as an :class:`ExperimentConfig`.

    Raises
    ------
    ConfigError
        Naming ``origin``, and for each problem the field path, the bad value and the fix.

    Examples
    --------
    >>> parse_config({"name": "demo", "data": {"source": "sklearn:iris"}}).oracle.kind
    'simulated'
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping; got {type(data).__name__}")
    return validate_sections(data, origin)


def read_yaml(path: str | Path, **overrides: Any) -> Any:
    """The parsed YAML file; ``overrides`` (those not None) replace top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"position {exc.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data.update({k: v for k, v in overrides.items() if v is not None})
    return data


def load_config(path: str | Path, **overrides: Any) -> ExperimentConfig:
    """Read and validate a YAML config; ``overrides`` replace top-level keys (e.g. ``seed``)."""
    return parse_config(read_yaml(path, **overrides), str(path))
