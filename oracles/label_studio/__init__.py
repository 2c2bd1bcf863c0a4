"""Label Studio as the labeling tool: batches go out as tasks, annotations come back as answers.

- :mod:`oracles.label_studio.oracle` — :class:`LabelStudioOracle` (push, poll, take);
- :mod:`oracles.label_studio.api` — the server calls it makes (label-studio-sdk);
- :mod:`oracles.label_studio.schema` — labeling interfaces, task JSON and annotations (pure);
- :mod:`oracles.label_studio.server` — a throwaway local Label Studio server (tests, trying out).

The server is a separate program with its own pins: install it in its own virtual environment
(``python -m venv .venv-label-studio && .venv-label-studio/bin/pip install label-studio``).
"""

from oracles.label_studio.api import LabelStudioAPI, SdkAPI
from oracles.label_studio.oracle import LabelStudioOracle
from oracles.label_studio.schema import LabelSchema, label_config, read_annotation, read_schema

__all__ = [
    "LabelSchema",
    "LabelStudioAPI",
    "LabelStudioOracle",
    "SdkAPI",
    "label_config",
    "read_annotation",
    "read_schema",
]
