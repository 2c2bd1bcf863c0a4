"""The YAML config, validated with pydantic: one module per section, one error formatter.

``model``, ``oracle`` and ``scoring`` are unions chosen by ``model.kind``, ``oracle.kind`` and
``scoring.backend``: each kind's class holds only its own fields. Errors name the file, the
field, the bad value and what is allowed::

    bad.yaml is invalid:
      loop.batch_size: Input should be greater than 0 (got -3)

The ``compare:`` (``alloop compare``) and ``selection:`` (``alloop select``) sections live in
:mod:`alloop.config.compare` and :mod:`alloop.config.selection`.
"""

from __future__ import annotations

from alloop.config.base import Section
from alloop.config.data import DataConfig
from alloop.config.errors import ConfigError, describe_validation_error
from alloop.config.experiment import ExperimentConfig
from alloop.config.loader import load_config, parse_config, read_yaml
from alloop.config.loop import (
    InitialConfig,
    LoopConfig,
    RelabelConfig,
    StabilizeConfig,
    StopRuleConfig,
    TargetConfig,
)
from alloop.config.model import GLMConfig, MLPConfig, ModelConfig, SklearnConfig
from alloop.config.oracle import (
    AnnotatorConfig,
    FilesConfig,
    LabelStudioConfig,
    OracleBase,
    OracleConfig,
    PeopleBase,
    SimulatedConfig,
    TerminalConfig,
    WebConfig,
)
from alloop.config.scoring import LocalScoring, RayScoring, ScoringConfig
from alloop.config.strategy import StrategyConfig
from alloop.config.tracking import StoreConfig, TrackingConfig

__all__ = [
    "AnnotatorConfig", "ConfigError", "DataConfig", "ExperimentConfig", "FilesConfig", "GLMConfig",
    "InitialConfig", "LabelStudioConfig", "LocalScoring", "LoopConfig", "MLPConfig", "ModelConfig",
    "OracleBase", "OracleConfig", "PeopleBase", "RayScoring", "RelabelConfig", "ScoringConfig", "Section", "SimulatedConfig",
    "SklearnConfig", "StabilizeConfig", "StopRuleConfig", "StoreConfig", "StrategyConfig",
    "TargetConfig", "TerminalConfig", "TrackingConfig", "WebConfig", "describe_validation_error",
    "load_config", "parse_config", "read_yaml",
]
