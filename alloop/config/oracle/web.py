"""``oracle: {kind: web, annotators: [...]}``: a team answers on an annotation page."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alloop.config.oracle.base import PeopleBase


class WebConfig(PeopleBase):
    """The page ``alloop run`` serves while the loop runs; tokens from ``alloop annotate token``."""

    kind: Literal["web"] = "web"
    annotators: list[str] = Field(min_length=1, description="the annotator ids")
    k: int = Field(1, gt=0, strict=True, description="annotators per item (redundancy)")
    policy: Literal["round-robin", "least-loaded"] = Field(
        "round-robin", description="round-robin | least-loaded"
    )
    host: str = Field("127.0.0.1", description="the address the annotation page binds to")
    port: int = Field(8765, ge=0, le=65535, description="the page's port (0: any free port)")
    tokens: str | None = Field(
        None, description="annotator token file (default: .alloop/<name>/tokens.sqlite)"
    )
    image_dir: str | None = Field(None, description="where pixel items are written as PNGs")

    @model_validator(mode="after")
    def _enough_annotators(self) -> WebConfig:
        if self.k > len(self.annotators):
            raise ValueError(f"oracle.k = {self.k} exceeds the {len(self.annotators)} annotators")
        return self
