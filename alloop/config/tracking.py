"""``tracking:`` (MLflow) and ``store:`` (the label store)."""

from __future__ import annotations

from pydantic import Field, model_validator

from alloop.config.base import Section


class TrackingConfig(Section):
    uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str | None = Field(None, description="default: the config name")


class StoreConfig(Section):
    path: str | None = Field(None, description="default: .alloop/<name>/<strategy>-seed<seed>.sqlite")
    url: str | None = Field(
        None, description="a database URL instead of a file, e.g. postgresql://user@host/db"
    )

    @model_validator(mode="after")
    def _one_target(self) -> StoreConfig:
        if self.path and self.url:
            raise ValueError("give store.path (a SQLite file) or store.url (a database), not both")
        if self.url:
            from alloop.store.connect import parse_target

            parse_target(self.url)  # a bad scheme or schema name fails here, naming it
        return self
