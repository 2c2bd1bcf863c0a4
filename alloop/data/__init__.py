"""Data: the pool of candidates and the loaders of data sets."""

from alloop.data.pool import Pool, validate_features

__all__ = ["Pool", "validate_features"]
