"""Closed forms of the hierarchical GLM: per-user outputs, loss gradients and loss Hessians.

Pure functions of tensors (no model object): f(x_i; θ_{u_i}) for every row, Σ_{i∈D_u} ∇ℓ and
Σ_{i∈D_u} ∇²ℓ per user, each in time linear in the rows and users (docs/math.md §5).
"""

from __future__ import annotations

import torch

from alloop.models.tensors import DTYPE

__all__ = [
    "per_user_loss_gradients",
    "per_user_loss_hessians",
    "per_user_outputs",
    "per_user_outputs_many",
]

#: elements of the per-point Hessian stack formed at once (32 MiB of float64).
_HESSIAN_CHUNK = 1 << 22


def per_user_outputs(
    design: torch.Tensor, thetas: torch.Tensor, users: torch.Tensor
) -> torch.Tensor:
    """f_i = f(x_i; θ_{u_i}) for every row, shape (n, K).

    Parameters
    ----------
    design : torch.Tensor, shape (n, d1)
        X̃ = [X, 1] (see :meth:`alloop.models.GLM.design`).
    thetas : torch.Tensor, shape (U, d1·K)
        One parameter vector per user, GLM layout.
    users : torch.Tensor of int, shape (n,)
        Row i belongs to user ``users[i]``.
    """
    n, d1 = design.shape
    rows = thetas.index_select(0, users).view(n, d1, -1)
    return torch.einsum("nj,njk->nk", design, rows)


def per_user_outputs_many(
    design: torch.Tensor, parameters: list[torch.Tensor], users: torch.Tensor
) -> list[torch.Tensor]:
    """[f(x_i; v_{u_i}) for v in ``parameters``], each (n, K), by one gather and one contraction.

    ``parameters`` holds per-user vectors of shape (U, p) — θ_u, tangents, other directions.
    For a GLM the output is linear in θ, so f(x; v) is also the forward JVP J_f(x)·v.
    """
    n, d1 = design.shape
    m = len(parameters)
    rows = torch.cat(parameters, dim=1).index_select(0, users).view(n, m, d1, -1)
    return list(torch.einsum("nj,nmjk->mnk", design, rows).unbind(0))


def per_user_loss_gradients(
    design: torch.Tensor, dloss_df: torch.Tensor, users: torch.Tensor, n_users: int
) -> torch.Tensor:
    """Σ_{i∈D_u} ∇_θ ℓ(z_i; θ_u) = Σ_{i∈D_u} x̃_i ⊗ ∂ℓ/∂f_i per user, shape (U, d1·K)."""
    n = design.shape[0]
    per_point = (design.unsqueeze(2) * dloss_df.unsqueeze(1)).reshape(n, -1)
    out = torch.zeros(n_users, per_point.shape[1], dtype=DTYPE)
    return out.index_add_(0, users, per_point)


def per_user_loss_hessians(
    design: torch.Tensor, output_hessian: torch.Tensor, users: torch.Tensor, n_users: int
) -> torch.Tensor:
    """L_u = Σ_{i∈D_u} (x̃_i x̃_iᵀ) ⊗ Λ_i per user, shape (U, p), p = d1·K.

    The GLM closed form of :meth:`alloop.models.GLM.loss_hessian` (Λ_i = ∂²ℓ/∂f² at row i),
    accumulated per user in time linear in the rows and users:

    * one output (K = 1): L_u = R_uᵀR_u with rows r_i = √Λ_i·x̃_i, as batched matrix products
      over users grouped by row count (counts in (2^{j-1}, 2^j] padded to the group's largest,
      so padding at most doubles the work);
    * K outputs: per-row blocks (x̃_i x̃_iᵀ) ⊗ Λ_i scatter-added over row chunks.
    """
    n, d1 = design.shape
    k = output_hessian.shape[1]
    p = d1 * k
    out = torch.zeros(n_users, p, p, dtype=DTYPE)
    if n == 0:
        return out
    if k == 1:
        root = design * output_hessian[:, 0, 0].clamp_min(0.0).sqrt().unsqueeze(1)
        order = torch.argsort(users, stable=True)
        padded = torch.cat([root[order], torch.zeros(1, d1, dtype=DTYPE)])  # row n: padding
        counts = torch.bincount(users, minlength=n_users)
        starts = torch.cumsum(counts, 0) - counts
        group = torch.ceil(torch.log2(counts.clamp_min(1).to(DTYPE))).to(torch.long)
        group[counts == 0] = -1
        for g in torch.unique(group[counts > 0]).tolist():
            members = torch.nonzero(group == g).flatten()
            width = int(counts[members].max())
            offsets = torch.arange(width)
            index = starts[members].unsqueeze(1) + offsets
            index = torch.where(offsets < counts[members].unsqueeze(1), index, n)
            R = padded[index]  # (members, width, d1)
            out[members] = torch.bmm(R.transpose(1, 2), R)
        return out
    flat = out.view(n_users, p * p)
    step = max(1, _HESSIAN_CHUNK // (p * p))
    for start in range(0, n, step):
        x = design[start : start + step]
        lam = output_hessian[start : start + step]
        block = torch.einsum("nj,nl,nab->njalb", x, x, lam).reshape(x.shape[0], -1)
        flat.index_add_(0, users[start : start + step], block)
    return out
