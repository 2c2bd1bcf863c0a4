"""``oracle:``: one config class per ``oracle.kind``, each with only its own fields.

Examples
--------
>>> from pydantic import TypeAdapter
>>> TypeAdapter(OracleConfig).validate_python({"kind": "files", "dir": "exchange"}).format
'csv'
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from alloop.config.oracle.base import LabelRule, OracleBase, PeopleBase
from alloop.config.oracle.files import FilesConfig
from alloop.config.oracle.label_studio import LabelStudioConfig
from alloop.config.oracle.simulated import AnnotatorConfig, SimulatedConfig
from alloop.config.oracle.terminal import TerminalConfig
from alloop.config.oracle.web import WebConfig


def _default_kind(value: Any) -> Any:
    """``kind`` may be left out: simulated, as before the union."""
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "simulated", **value}
    return value


OracleConfig = Annotated[
    SimulatedConfig | TerminalConfig | FilesConfig | WebConfig | LabelStudioConfig,
    Field(discriminator="kind"),
    BeforeValidator(_default_kind),
]

__all__ = [
    "AnnotatorConfig", "FilesConfig", "LabelRule", "LabelStudioConfig", "OracleBase", "OracleConfig",
    "PeopleBase", "SimulatedConfig", "TerminalConfig", "WebConfig",
]
