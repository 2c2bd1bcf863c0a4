"""``oracle: {kind: files, dir: DIR}``: requests and answers as CSV or JSONL files."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alloop.config.oracle.base import PeopleBase


class FilesConfig(PeopleBase):
    """Each round writes a request file into ``dir`` and reads the answers file as it is saved."""

    kind: Literal["files"] = "files"
    dir: str = Field(description="the exchange folder")
    format: Literal["csv", "jsonl"] = Field("csv", description="csv | jsonl")
    poll_interval: float = Field(1.0, ge=0.0, description="seconds between reads of the answers")
    annotator: str | None = Field(None, description="the person's id (default: files)")
    annotators: list[str] | None = Field(
        None, description="ids allowed to answer; each answer line names one"
    )
