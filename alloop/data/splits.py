"""Seeded train / validation / test splits of a data set, stratified by class where possible."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from alloop.data.dataset import Dataset


@dataclass(frozen=True)
class Splits:
    """Disjoint parts of one data set; ``validation`` and ``test`` are ``None`` when not asked for.

    In active learning ``train`` is the pool the learner queries, ``validation`` may drive
    model or strategy choices, and ``test`` is held out for the reported metrics.
    """

    train: Dataset
    validation: Dataset | None
    test: Dataset | None


def split_dataset(
    ds: Dataset,
    *,
    test: float | int = 0.25,
    validation: float | int = 0.0,
    seed: int = 0,
    stratify: bool = True,
) -> Splits:
    """Split a data set into train, validation and test parts.

    Parameters
    ----------
    ds : Dataset
    test, validation : float or int
        A fraction of the whole set in [0, 1) (rounded up to whole items), or a count of items.
        0 leaves the part out (``None``).
    seed : int
        The same seed and data always give the same split.
    stratify : bool
        For classification, keep each class's share in every part. When a part is too small
        for that (a class with one item, or fewer items in a part than classes) the split is
        made without stratification and a ``UserWarning`` says why.

    Returns
    -------
    Splits
        Each part lists its items in their original order; parts keep the classes of ``ds``.

    Examples
    --------
    >>> from alloop.data.loaders import load_dataset
    >>> parts = split_dataset(load_dataset("sklearn:iris"), test=0.2, validation=0.2, seed=1)
    >>> len(parts.train), len(parts.validation), len(parts.test)
    (90, 30, 30)
    """
    n = len(ds)
    n_test = _count(test, n, "test")
    n_validation = _count(validation, n, "validation")
    if n - n_test - n_validation < 1:
        raise ValueError(
            f"test ({n_test}) and validation ({n_validation}) leave no training items out of "
            f"{n}; ask for smaller parts"
        )
    rng = np.random.RandomState(seed)  # one stream for both cuts, so the split is reproducible
    labels = ds.y if stratify and ds.task == "classification" else None
    rest, test_index = _cut(np.arange(n), n_test, labels, rng, "test")
    train_index, validation_index = _cut(rest, n_validation, labels, rng, "validation")
    return Splits(
        train=ds.subset(np.sort(train_index)),
        validation=ds.subset(np.sort(validation_index)) if n_validation else None,
        test=ds.subset(np.sort(test_index)) if n_test else None,
    )


def _count(size: float | int, n: int, name: str) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise TypeError(f"{name} must be a fraction or a count; got {size!r}")
    if isinstance(size, numbers.Integral):
        if not 0 <= size < n:
            raise ValueError(f"{name} must hold between 0 and {n - 1} items; got {size}")
        return int(size)
    if not 0.0 <= size < 1.0:
        raise ValueError(f"{name} as a fraction must lie in [0, 1); got {size}")
    return math.ceil(size * n - 1e-9)  # 0.3 * 10 is 3.0000000000000004, not 4 items


def _cut(
    index: np.ndarray,
    k: int,
    labels: np.ndarray | None,
    rng: np.random.RandomState,
    part: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` into (kept, taken) with ``k`` taken items."""
    if k == 0:
        return index, index[:0]
    strata = None
    if labels is not None:
        reason = _why_not_stratified(labels[index], k)
        if reason:
            warnings.warn(
                f"the {part} part is drawn without stratification: {reason}",
                UserWarning,
                stacklevel=3,
            )
        else:
            strata = labels[index]
    kept, taken = train_test_split(index, test_size=k, random_state=rng, stratify=strata)
    return kept, taken


def _why_not_stratified(labels: np.ndarray, k: int) -> str:
    """Why a stratified draw of ``k`` from ``labels`` is impossible ('' when it is possible)."""
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        return f"class {classes[counts.argmin()].tolist()!r} has a single item"
    if k < len(classes):
        return f"{k} items cannot represent {len(classes)} classes"
    if len(labels) - k < len(classes):
        return f"{len(labels) - k} remaining items cannot represent {len(classes)} classes"
    return ""
