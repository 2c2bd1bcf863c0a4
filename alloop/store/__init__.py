"""Durable label storage: an append-only answer log in SQLite or PostgreSQL."""

from alloop.store.chain import ChainBrokenError
from alloop.store.label_store import LabelStore, StoredAnswer, open_store
from alloop.store.lease import StoreLeaseError
from alloop.store.location import remove_store, store_exists
from alloop.store.migrations import SchemaVersionError
from alloop.store.schema import SCHEMA_VERSION

__all__ = [
    "ChainBrokenError",
    "SCHEMA_VERSION",
    "LabelStore",
    "SchemaVersionError",
    "StoreLeaseError",
    "StoredAnswer",
    "open_store",
    "remove_store",
    "store_exists",
]
