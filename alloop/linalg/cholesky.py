"""Cholesky factorisation that survives numerically singular Hessians."""

from __future__ import annotations

import warnings

import torch


def cholesky_with_jitter(H: torch.Tensor, what: str = "the Hessian") -> torch.Tensor:
    """Cholesky factor of H; if H is numerically singular, of H + δI with the smallest δ that works.

    Near-singular Hessians are common in active learning: a softmax class with no labeled point
    yet has an intercept that the data push toward −∞, so its curvature is ~1e-10. The jitter δ
    starts at 1e-12·max diag(H) and grows tenfold up to 1e-4·max diag(H); a warning names it.
    Beyond that H is treated as singular and a ValueError says what to change.
    """
    try:
        return torch.linalg.cholesky(H)
    except torch.linalg.LinAlgError:
        pass
    scale = float(H.diagonal().abs().max()) or 1.0
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    for power in range(-12, -3):
        jitter = scale * 10.0**power
        L, info = torch.linalg.cholesky_ex(H + jitter * eye)
        if int(info) == 0:
            warnings.warn(
                f"{what} is numerically singular; solved with damping {jitter:.2e} "
                "(a class without labeled points, or too weak a regularization)",
                RuntimeWarning,
                stacklevel=3,
            )
            return L
    raise ValueError(
        f"{what} is not positive definite even with damping {jitter:.2e}; use a larger s "
        "(stronger regularization), or pass damping > 0"
    )
