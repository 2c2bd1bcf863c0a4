"""The base of every config section: unknown keys are errors, not silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section; a misspelt key fails validation and names the valid ones."""

    model_config = ConfigDict(extra="forbid")
