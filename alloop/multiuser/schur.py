"""The Hessian of the hierarchical objective, solved by blocks through its Schur complement.

With λ_0 = e^{s_0}, λ_1 = e^{s_1}, a penalty mask M (1 on weights, 0 on intercepts) and L_u the
loss Hessian of user u, the Hessian of

    F = Σ_u [Σ_{i∈D_u} ℓ(z_i; θ_u) + λ_1·½‖θ_u − θ_0‖²] + λ_0·½‖Mθ_0‖²

over (θ_0, θ_1, ..., θ_U) is an "arrow": block-diagonal H_u = L_u + λ_1 I in the users, coupled
only through θ_0 by −λ_1 I, with H_00 = λ_0 M + Uλ_1 I. Eliminating the users leaves the Schur
complement

    S = λ_0 M + λ_1 Σ_u (I − λ_1 H_u⁻¹) = λ_0 M + λ_1 Σ_u H_u⁻¹ L_u

(the second form has no cancellation when L_u is small next to λ_1 I). A system H x = r is then
solved by one p×p factorization per user with data, one for S, and O(p) work per user without
data (there H_u = λ_1 I): time and memory linear in the number of users, never a dense solve
over every user's parameters together (docs/math.md §5).
"""

from __future__ import annotations

import warnings

import torch

from alloop.linalg.cholesky import cholesky_with_jitter
from alloop.models.tensors import DTYPE

__all__ = ["ArrowSystem", "batched_cholesky"]


def batched_cholesky(H: torch.Tensor, what: str = "a user's Hessian") -> torch.Tensor:
    """Cholesky factors of a stack of SPD matrices (B, p, p), jittering only the ones that fail.

    The per-user Hessians L_u + λ_1 I are positive definite for λ_1 > 0; a factorization can
    still fail when λ_1 is tiny next to L_u. Those matrices get the escalating jitter of
    :func:`alloop.linalg.cholesky.cholesky_with_jitter` (with its warning), the rest are
    factored in one batched call.
    """
    L, info = torch.linalg.cholesky_ex(H)
    for b in torch.nonzero(info).flatten().tolist():
        L[b] = cholesky_with_jitter(H[b], what=f"{what} (block {b})")
    return L


class ArrowSystem:
    """Factorized Hessian of the hierarchical objective at one (θ_0, θ_u) and (s_0, s_1).

    Parameters
    ----------
    loss_hessians : torch.Tensor, shape (A, p, p)
        L_u = Σ_{i∈D_u} ∇²ℓ(z_i; θ_u) for the A users that have data.
    active : torch.Tensor of int, shape (A,)
        Their user indices in [0, n_users), increasing.
    n_users : int
        U; users not in ``active`` have no data (L_u = 0, H_u = λ_1 I).
    lam0, lam1 : float
        λ_0 = e^{s_0} and λ_1 = e^{s_1}, both > 0.
    mask : torch.Tensor, shape (p,)
        M: 1 for parameters that λ_0 penalizes, 0 for the (tied but globally free) intercepts.
    null : torch.Tensor, optional, shape (p, m)
        Orthonormal directions along which every block's loss is flat and M vanishes (the
        softmax intercept shift). The joint objective is flat along "shift θ_0 and every θ_u
        together"; solutions are returned with θ_0's component along ``null`` set to zero,
        which keeps the fitted global softmax intercepts summing to zero.

    Examples
    --------
    >>> import torch
    >>> L = torch.tensor([[[2.0]]], dtype=torch.float64)  # one user with data, p = 1
    >>> system = ArrowSystem(L, torch.tensor([0]), 2, 1.0, 1.0, torch.ones(1, dtype=torch.float64))
    >>> x0, xu = system.solve(torch.ones(1, 1, dtype=torch.float64),
    ...                       torch.zeros(2, 1, 1, dtype=torch.float64))
    >>> round(float(x0), 6), [round(float(v), 6) for v in xu.flatten()]
    (0.6, [0.2, 0.6])
    """

    def __init__(
        self,
        loss_hessians: torch.Tensor,
        active: torch.Tensor,
        n_users: int,
        lam0: float,
        lam1: float,
        mask: torch.Tensor,
        null: torch.Tensor | None = None,
    ) -> None:
        if not (lam0 > 0 and lam1 > 0):
            raise ValueError(
                f"λ_0 = e^s0 and λ_1 = e^s1 must be positive; got {lam0!r}, {lam1!r} "
                "(use finite s0 and s1)"
            )
        if loss_hessians.dim() != 3 or loss_hessians.shape[1] != loss_hessians.shape[2]:
            raise ValueError(
                f"loss_hessians must have shape (A, p, p); got {tuple(loss_hessians.shape)}"
            )
        if active.numel() != loss_hessians.shape[0]:
            raise ValueError(
                f"{active.numel()} active users for {loss_hessians.shape[0]} loss Hessians"
            )
        self.p = loss_hessians.shape[1]
        self.n_users = int(n_users)
        self.lam0, self.lam1 = float(lam0), float(lam1)
        self.active = active.to(torch.long)
        self.mask = mask.to(DTYPE)
        self.null = null
        inactive = torch.ones(self.n_users, dtype=torch.bool)
        inactive[self.active] = False
        self.inactive = torch.nonzero(inactive).flatten()
        self.loss_hessians = loss_hessians
        eye = torch.eye(self.p, dtype=DTYPE)
        self.user_factors = batched_cholesky(loss_hessians + self.lam1 * eye)
        # H_u⁻¹ L_u = I − λ_1 H_u⁻¹, symmetrised (the two factors commute).
        projector = torch.cholesky_solve(loss_hessians, self.user_factors)
        self.user_projectors = 0.5 * (projector + projector.transpose(1, 2))
        self.schur = torch.diag(self.lam0 * self.mask) + self.lam1 * self.user_projectors.sum(0)
        gauge = 0.0 if null is None else null @ null.T
        self._schur_factor = cholesky_with_jitter(
            self.schur + gauge, what=f"the Schur complement (λ_0 = {lam0:.3g}, λ_1 = {lam1:.3g})"
        )

    # ------------------------------------------------------------------ primitives
    def _project(self, b: torch.Tensor) -> torch.Tensor:
        return b if self.null is None else b - self.null @ (self.null.T @ b)

    def schur_solve(self, b: torch.Tensor) -> torch.Tensor:
        """S⁻¹b for b of shape (p,) or (p, m), on the complement of the null directions."""
        column = b.dim() == 1
        b = self._project(b.unsqueeze(1) if column else b)
        x = self._project(torch.cholesky_solve(b, self._schur_factor))
        return x[:, 0] if column else x

    def user_solve(self, b: torch.Tensor) -> torch.Tensor:
        """H_u⁻¹b_u for every active user: b of shape (A, p, m) or (p, m) (the same for all)."""
        if b.dim() == 2:
            b = b.expand(self.active.numel(), *b.shape)
        return torch.cholesky_solve(b, self.user_factors)

    # ------------------------------------------------------------------ full solve
    def solve(self, r0: torch.Tensor, r_users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = H⁻¹r for the joint Hessian by block elimination.

        ``H_u x_u − λ_1 x_0 = r_u`` gives ``x_u = H_u⁻¹(r_u + λ_1 x_0)``; substituting into the
        θ_0 row gives ``S x_0 = r_0 + λ_1 Σ_u H_u⁻¹ r_u`` (for a user without data
        λ_1 H_u⁻¹ r_u = r_u).

        Parameters
        ----------
        r0 : torch.Tensor, shape (p,) or (p, m)
        r_users : torch.Tensor, shape (U, p) or (U, p, m)

        Returns
        -------
        x0, x_users : torch.Tensor
            Shapes of ``r0`` and ``r_users``.
        """
        column = r0.dim() == 1
        if column:
            r0, r_users = r0.unsqueeze(1), r_users.unsqueeze(2)
        if r0.shape[0] != self.p or r_users.shape[:2] != (self.n_users, self.p):
            raise ValueError(
                f"right-hand sides must have shapes ({self.p}, m) and "
                f"({self.n_users}, {self.p}, m); "
                f"got {tuple(r0.shape)} and {tuple(r_users.shape)}"
            )
        y_active = self.user_solve(r_users[self.active])
        reduced = r0 + self.lam1 * y_active.sum(0) + r_users[self.inactive].sum(0)
        if self.null is not None:
            residual = float((self.null.T @ reduced).abs().max())
            if residual > 1e-8 * max(1.0, float(reduced.abs().max())):
                warnings.warn(
                    f"the right-hand side has a component {residual:.2e} along the flat "
                    "softmax-intercept direction; it is dropped",
                    RuntimeWarning,
                    stacklevel=2,
                )
        x0 = self.schur_solve(reduced)
        x_users = r_users / self.lam1 + x0  # users without data: H_u = λ_1 I
        x_users[self.active] = y_active + self.lam1 * self.user_solve(x0)
        if column:
            return x0[:, 0], x_users[:, :, 0]
        return x0, x_users

    def matvec(self, x0: torch.Tensor, x_users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """H x for x of shapes (p,) and (U, p) (a check and a tool for iterative callers)."""
        L = torch.zeros(self.n_users, self.p, self.p, dtype=DTYPE)
        L[self.active] = self.loss_hessians
        y_users = torch.einsum("upq,uq->up", L, x_users) + self.lam1 * (x_users - x0)
        y0 = self.lam0 * self.mask * x0 + self.lam1 * (x0 - x_users).sum(0)
        return y0, y_users
