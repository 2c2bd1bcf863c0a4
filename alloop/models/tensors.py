"""Conversion of user feature containers to float64 torch tensors (dense or sparse CSR)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

DTYPE = torch.float64


def as_features(X: Any) -> torch.Tensor:
    """Return ``X`` as a 2-D float64 tensor; scipy sparse becomes a coalesced torch COO tensor.

    COO rather than CSR: torch's COO layout supports row selection and autograd through
    ``torch.sparse.mm`` on the CPU, which the GLMs need for bag-of-words features.
    """
    if isinstance(X, torch.Tensor):
        t = X.to(DTYPE)
    elif sp.issparse(X):
        coo = sp.coo_matrix(X, dtype=np.float64)
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        t = torch.sparse_coo_tensor(
            index, torch.from_numpy(coo.data), size=coo.shape, dtype=DTYPE, check_invariants=False
        ).coalesce()
    else:
        t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if t.dim() != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features); got shape {tuple(t.shape)}")
    return t


def as_dense(X: torch.Tensor) -> torch.Tensor:
    """Dense view of a feature tensor (sparse is densified)."""
    return X.to_dense() if X.layout != torch.strided else X


def rows(X: torch.Tensor, index: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Select rows of a dense or sparse COO feature tensor."""
    index = torch.as_tensor(np.asarray(index), dtype=torch.long)
    return X.index_select(0, index)


def matmul(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """X @ W for dense or sparse X, differentiable in W."""
    return torch.sparse.mm(X, W) if X.is_sparse else X @ W
