"""``oracle: {kind: label-studio}``: the batch becomes tasks of a Label Studio project."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alloop.config.oracle.base import PeopleBase


class LabelStudioConfig(PeopleBase):
    """Where the Label Studio project lives; the API token stays in the environment."""

    kind: Literal["label-studio"] = "label-studio"
    url: str = Field("http://127.0.0.1:8080", description="the Label Studio server")
    token_env: str = Field(
        "LABEL_STUDIO_API_KEY", description="environment variable holding the API token (never logged)"
    )
    project_id: int | None = Field(None, gt=0, description="an existing project; default: create one")
    title: str | None = Field(None, description="title of a created project (default: the config name)")
    poll_interval: float = Field(1.0, ge=0.0, description="seconds between looks at the project")
