"""Durable label storage."""

from alloop.store.label_store import LabelStore, StoredAnswer

__all__ = ["LabelStore", "StoredAnswer"]
