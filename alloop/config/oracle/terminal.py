"""``oracle: {kind: terminal}``: one person answers at a prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alloop.config.oracle.base import PeopleBase


class TerminalConfig(PeopleBase):
    """A person at this terminal; ``q`` or Ctrl-C stops, ``--resume`` continues."""

    kind: Literal["terminal"] = "terminal"
    annotator: str | None = Field(None, description="the person's id (default: terminal)")
    image_dir: str | None = Field(None, description="where pixel items are written as PNGs")
