"""Data: the pool of candidates and the loaders of data sets."""

from alloop.data.dataset import Dataset
from alloop.data.loaders import load_dataset
from alloop.data.pool import Pool, validate_features
from alloop.data.splits import Splits, split_dataset

__all__ = ["Dataset", "Pool", "Splits", "load_dataset", "split_dataset", "validate_features"]
