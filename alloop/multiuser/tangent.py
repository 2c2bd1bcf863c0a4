"""Regularity tangents of the hierarchical model by the block formulas (docs/math.md §5).

At the fitted (θ_0, θ_u), with H_u = L_u + λ_1 I and S = λ_0 M + λ_1 Σ_u (I − λ_1 H_u⁻¹):

    dθ_0/ds_0 = −S⁻¹ λ_0 Mθ_0                       dθ_u/ds_0 = λ_1 H_u⁻¹ dθ_0/ds_0
    dθ_0/ds_1 = −S⁻¹ λ_1 Σ_u (I − λ_1 H_u⁻¹)(θ_0 − θ_u)
    dθ_u/ds_1 = λ_1 H_u⁻¹ dθ_0/ds_1 − λ_1 H_u⁻¹ (θ_u − θ_0)

(the implicit function theorem on the stationarity conditions, solved by eliminating the users;
M masks the globally unpenalized intercepts). A user without data has H_u = λ_1 I and
θ_u = θ_0, so its tangents equal θ_0's exactly: it has a non-zero tangent before its first
label. Cost: one solve per user with data and one p×p Schur solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alloop.multiuser.schur import ArrowSystem

__all__ = ["HYPERPARAMETERS", "BlockTangents", "block_tangents", "s0_tangent", "s1_tangent"]

#: the hyperparameters, in the order of the leading axis of :class:`BlockTangents` fields.
HYPERPARAMETERS = ("s0", "s1")


@dataclass(frozen=True)
class BlockTangents:
    """dθ/ds of a fitted hierarchical model for s = s_0 (index 0) and s = s_1 (index 1).

    Attributes
    ----------
    global_ : torch.Tensor, shape (2, p)
        dθ_0/ds_0 and dθ_0/ds_1.
    users : torch.Tensor, shape (2, U, p)
        dθ_u/ds_0 and dθ_u/ds_1 for every user.
    """

    global_: torch.Tensor
    users: torch.Tensor

    def __getitem__(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(dθ_0/ds, dθ_users/ds) for ``name`` in {"s0", "s1"}."""
        try:
            k = HYPERPARAMETERS.index(name)
        except ValueError:
            raise KeyError(
                f"unknown hyperparameter {name!r}; expected one of {HYPERPARAMETERS}"
            ) from None
        return self.global_[k], self.users[k]

    def norm(self, name: str) -> float:
        """‖dθ/ds‖ over the joint parameter vector (θ_0, θ_1, ..., θ_U)."""
        g, u = self[name]
        return float(torch.sqrt((g**2).sum() + (u**2).sum()))


def s0_tangent(
    system: ArrowSystem, theta0: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dθ_0/ds_0, dθ_u/ds_0): −S⁻¹λ_0Mθ_0, then λ_1 H_u⁻¹ dθ_0/ds_0 per user.

    Parameters
    ----------
    system : ArrowSystem
        The factorized Hessian at the fit.
    theta0 : torch.Tensor, shape (p,)
    mask : torch.Tensor, shape (p,)
        M, the λ_0 penalty mask.

    Returns
    -------
    d_global : torch.Tensor, shape (p,)
    d_users : torch.Tensor, shape (U, p)
    """
    d_global = -system.schur_solve(system.lam0 * mask * theta0)
    d_users = d_global.expand(system.n_users, -1).clone()  # users without data: dθ_0/ds_0
    inherited = system.lam1 * system.user_solve(d_global.unsqueeze(1))[:, :, 0]
    d_users[system.active] = inherited
    return d_global, d_users


def s1_tangent(
    system: ArrowSystem, theta0: torch.Tensor, thetas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dθ_0/ds_1, dθ_u/ds_1) by the block formulas.

    Parameters
    ----------
    system : ArrowSystem
    theta0 : torch.Tensor, shape (p,)
    thetas : torch.Tensor, shape (U, p)

    Returns
    -------
    d_global : torch.Tensor, shape (p,)
    d_users : torch.Tensor, shape (U, p)
    """
    active = system.active
    deviation = (thetas[active] - theta0).unsqueeze(2)  # θ_u − θ_0, (A, p, 1)
    # Σ_u (I − λ_1 H_u⁻¹)(θ_0 − θ_u) with I − λ_1 H_u⁻¹ = H_u⁻¹ L_u; users without data add 0.
    pull = -(system.user_projectors @ deviation).sum(0)[:, 0]
    d_global = -system.schur_solve(system.lam1 * pull)
    d_users = d_global.expand(system.n_users, -1).clone()
    rhs = d_global.expand(active.numel(), -1).unsqueeze(2) - deviation
    d_users[active] = system.lam1 * system.user_solve(rhs)[:, :, 0]
    return d_global, d_users


def block_tangents(
    system: ArrowSystem, theta0: torch.Tensor, thetas: torch.Tensor, mask: torch.Tensor
) -> BlockTangents:
    """Both tangents of a fit: ``BlockTangents(global_ (2, p), users (2, U, p))``.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(30, 2)); users = np.arange(30) % 3
    >>> model = HierarchicalGLM("gaussian").fit_users(X, X[:, 0] + users, users, n_users=4)
    >>> t = model.tangents()
    >>> bool((t.users[:, 3] == t.global_).all())  # user 3 has no data: inherits θ_0's tangent
    True
    """
    g0, u0 = s0_tangent(system, theta0, mask)
    g1, u1 = s1_tangent(system, theta0, thetas)
    return BlockTangents(torch.stack([g0, g1]), torch.stack([u0, u1]))
