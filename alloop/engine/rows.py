"""Feature rows as the batch rules take them, and the batch-size check they share."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

Rows = np.ndarray | sp.csr_matrix


def as_rows(X: Any, name: str) -> Rows:
    """``X`` as float64 rows: an ndarray, or CSR when sparse (a copy only if format or dtype
    differ; never densified).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> as_rows(sp.eye(2, format="coo"), "X").format
    'csr'
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        if X.layout == torch.strided:
            X = X.numpy()
        else:
            coo = X.to_sparse_coo().coalesce()
            row, col = coo.indices().numpy()
            X = sp.coo_matrix((coo.values().numpy(), (row, col)), shape=tuple(coo.shape))
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
    else:
        X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, n_features); got shape {X.shape}")
    return X


def check_batch_size(k: Any, n: int) -> None:
    """Raise unless ``1 ≤ k ≤ n`` (an integer) and the pool is not empty.

    Examples
    --------
    >>> check_batch_size(3, 2)
    Traceback (most recent call last):
    ...
    ValueError: batch size 3 is larger than the 2 unlabeled items left; lower loop.batch_size or stop the loop
    """
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"batch size must be a positive integer; got {k!r}")
    if n == 0:
        raise ValueError("the pool is empty: no items left to select")
    if k > n:
        raise ValueError(
            f"batch size {k} is larger than the {n} unlabeled items left; lower loop.batch_size "
            "or stop the loop"
        )
