"""Conversion of user feature containers to torch tensors (dense or sparse COO) on a device.

A model holds its own device and dtype (:func:`resolve_device`, :func:`resolve_dtype`); the
defaults, float64 on the CPU (:data:`DTYPE`), are what every figure of alloop was made with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

#: the dtype of a model on the CPU when none is given, and of the helpers that get no model.
DTYPE = torch.float64
#: ``device=`` values besides an explicit torch device string ("cuda:1"): auto is cuda if present.
DEVICES = ("cpu", "cuda", "auto")
#: ``dtype=`` names; None means float64 on the CPU and float32 on an accelerator.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: rows moved to an accelerator at once when a model predicts on a pool (one block at a time).
DEVICE_BATCH_ROWS = 8192


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """The torch device ``device`` names: "cpu", "cuda" (or "cuda:i"), or "auto".

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        out = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES} or 'cuda:<index>'") from None
    if out.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asked for, but torch sees no CUDA device; use device='cpu' or 'auto'"
        )
    if out.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES} or 'cuda:<index>'")
    return out


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype ``dtype`` names; None is float64 on the CPU and float32 elsewhere.

    Examples
    --------
    >>> resolve_dtype(None, torch.device("cpu")), resolve_dtype("float32", torch.device("cpu"))
    (torch.float64, torch.float32)
    """
    if dtype is None:
        return DTYPE if device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)} (or None)")


def as_features(
    X: Any, dtype: torch.dtype = DTYPE, device: torch.device | str | None = None
) -> torch.Tensor:
    """Return ``X`` as a 2-D tensor of ``dtype`` on ``device`` (None: where a tensor already
    is, the CPU otherwise); scipy sparse becomes a coalesced torch COO tensor.

    COO rather than CSR: torch's COO layout supports row selection and autograd through
    ``torch.sparse.mm`` on the CPU, which the GLMs need for bag-of-words features.
    """
    if isinstance(X, torch.Tensor):
        t = X.to(dtype)
    elif sp.issparse(X):
        coo = sp.coo_matrix(X, dtype=np.float64)
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        t = torch.sparse_coo_tensor(
            index, torch.from_numpy(coo.data).to(dtype), size=coo.shape, dtype=dtype,
            check_invariants=False,
        ).coalesce()
    else:
        t = torch.as_tensor(np.asarray(X, dtype=np.float64)).to(dtype)
    if t.dim() != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features); got shape {tuple(t.shape)}")
    return t if device is None else t.to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a float64 numpy array on the host (no copy for a float64 CPU tensor)."""
    return t.detach().to("cpu", torch.float64).numpy()


def as_dense(X: torch.Tensor) -> torch.Tensor:
    """Dense view of a feature tensor (sparse is densified)."""
    return X.to_dense() if X.layout != torch.strided else X


def rows(X: torch.Tensor, index: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Select rows of a dense or sparse COO feature tensor."""
    if isinstance(index, torch.Tensor):
        index = index.to(device=X.device, dtype=torch.long)
    else:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long, device=X.device)
    return X.index_select(0, index)


def matmul(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """X @ W for dense or sparse X, differentiable in W."""
    return torch.sparse.mm(X, W) if X.is_sparse else X @ W
