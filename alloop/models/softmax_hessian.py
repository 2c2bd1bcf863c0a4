"""The softmax GLM's loss Hessian Σ_i w_i (x̃_i x̃_iᵀ) ⊗ Λ_i, Λ_i = diag(p_i) − p_i p_iᵀ, dense.

Its (c, c') block, (d+1)-square, is X̃ᵀ diag(w ∘ Λ_{cc'}) X̃; every block is symmetric and so is
the block pattern, so the distinct entries are the pairs a ≤ b of features times the pairs
c ≤ c' of classes. One matrix product gives them all: G = Zᵀ Ω with z_i = vech(x̃_i x̃_iᵀ)
(the products x̃_ia x̃_ib, a ≤ b) and one column of Ω per class pair. The rows of Λ_i sum to zero
(Σ_c p_ic = 1), so the blocks of one class follow from the others' by sums and Ω needs only the
K(K − 1)/2 pairs of the other K − 1 classes. That is n·(d+1)(d+2)/2·K(K − 1)/2 multiply-adds,
(d+2)(K−1)/(2(d+1)K) ≈ 0.46× (d = 64, K = 10) the n·(K(d+1))²/2 of the Gram matrix AᵀA with
rows a_i = x̃_i ⊗ p_i, by syrk, that this replaces (which also needed K block products).
The class left out is the one with the most probability mass: the sums then lose no more to
rounding than the direct blocks do (their error scales with the other classes' probabilities).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

#: entries of one row block of Z (rows × feature pairs) built at a time: ≈ 4 MB in float64,
#: small enough to stay in cache next to the product, large enough for an efficient product.
BLOCK_ENTRIES = 1 << 19
#: NumPy's products get Ω padded with zero columns to a multiple of this: 45 → 48 columns
#: (K = 10) made the float32 product ≈ 12% faster on the machine of benchmarks/results/scoring.md
PAD_COLUMNS = 8


def softmax_loss_hessian(
    Xd: torch.Tensor, prob: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Σ_i w_i (x̃_i x̃_iᵀ) ⊗ (diag(p_i) − p_i p_iᵀ), shape ((d+1)K, (d+1)K), row-major (d+1, K).

    Parameters
    ----------
    Xd : torch.Tensor, shape (n, d+1)
        The dense design X̃ (with its intercept column, if any).
    prob : torch.Tensor, shape (n, K)
        The class probabilities p_i (rows summing to one).
    weights : torch.Tensor, shape (n,), optional
        Row weights w_i (any sign); one each by default.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    >>> P = torch.softmax(torch.tensor([[0.1, 0.5, -0.2], [1.0, 0.0, 0.3], [0.0, 0.2, 0.4]],
    ...                                dtype=torch.float64), dim=1)
    >>> Lam = torch.diag_embed(P) - P.unsqueeze(2) * P.unsqueeze(1)
    >>> brute = sum(torch.kron(torch.outer(x, x), L) for x, L in zip(X, Lam))
    >>> bool(torch.allclose(softmax_loss_hessian(X, P), brute, rtol=1e-14, atol=1e-15))
    True
    """
    n, d1 = Xd.shape
    k = prob.shape[1]
    last = int(prob.sum(0).argmax())  # the class whose blocks come from the others' sums
    others = [c for c in range(k) if c != last]
    P = prob[:, others]
    ci, cj = np.triu_indices(k - 1)
    omega = -(P[:, ci] * P[:, cj])  # (n, J): Λ_{cc'} for c ≤ c' among the other classes
    omega[:, np.flatnonzero(ci == cj)] += P
    if weights is not None:
        omega = omega * weights.unsqueeze(1)
    G = _pair_products(Xd, omega)  # (m, J): one row per feature pair a ≤ b
    # the blocks (c, last) = −Σ_{c' ≠ last} (c, c') and (last, last) = −Σ_c (c, last), from
    # the sums of G's columns over each class's pairs (the rows of Λ_i sum to zero)
    pair = np.zeros((k - 1, k - 1), dtype=np.int64)
    pair[ci, cj] = pair[cj, ci] = np.arange(len(ci))
    edge = -G[:, torch.from_numpy(pair).to(G.device)].sum(2)  # (m, K − 1)
    G = torch.cat([G, edge, -edge.sum(1, keepdim=True)], dim=1)
    index = _gather_index(d1, k, last)
    if G.device.type == "cpu" and G.dtype in (torch.float64, torch.float32) and not G.requires_grad:
        # NumPy's take: ≈ 3× faster than torch's indexing here
        flat = np.take(G.numpy().reshape(-1), index.numpy())
        return torch.from_numpy(flat).view(d1 * k, d1 * k)
    return G.reshape(-1)[index.to(G.device)].view(d1 * k, d1 * k)


@functools.lru_cache(maxsize=8)
def _gather_index(d1: int, k: int, last: int) -> torch.Tensor:
    """Flat positions in the extended G (rows: feature pairs a ≤ b; columns: the J class pairs
    c ≤ c' of the other classes, then (c, last) for each other c, then (last, last)) of every
    entry H[(a, c), (b, c')] of the row-major ((d+1)K)-square Hessian."""
    feature = np.zeros((d1, d1), dtype=np.int64)
    fi, fj = np.triu_indices(d1)
    feature[fi, fj] = feature[fj, fi] = np.arange(len(fi))
    others = [c for c in range(k) if c != last]
    ci, cj = np.triu_indices(k - 1)
    n_pairs = len(ci)
    cls = np.zeros((k, k), dtype=np.int64)
    o = np.asarray(others, dtype=np.int64)
    cls[o[ci], o[cj]] = cls[o[cj], o[ci]] = np.arange(n_pairs)
    cls[o, last] = cls[last, o] = n_pairs + np.arange(k - 1)
    cls[last, last] = n_pairs + k - 1
    width = n_pairs + k
    index = feature[:, None, :, None] * width + cls[None, :, None, :]  # (a, c, b, c')
    return torch.from_numpy(index.reshape(-1))


def _pair_products(
    Xd: torch.Tensor, omega: torch.Tensor, use_numpy: bool | None = None
) -> torch.Tensor:
    """G = Σ_i vech(x̃_i x̃_iᵀ) ω_iᵀ, shape (d1(d1+1)/2, J), one block of Z at a time.

    On the CPU (``use_numpy=None``) the products run in NumPy's BLAS, which was about 2× faster
    than torch's for these shapes on the machine of benchmarks/results/scoring.md; elsewhere,
    or with ``use_numpy=False``, in torch.
    """
    n, d1 = Xd.shape
    m = d1 * (d1 + 1) // 2
    if use_numpy is None:
        use_numpy = Xd.device.type == "cpu" and Xd.dtype in (torch.float64, torch.float32)
    J = omega.shape[1]
    if use_numpy:
        Xt = np.ascontiguousarray(Xd.detach().numpy().T)  # (d1, n): contiguous feature rows
        W = omega.detach().numpy()
        if J % PAD_COLUMNS:  # zero columns up to a multiple of the BLAS kernel's width
            W = np.concatenate([W, np.zeros((n, PAD_COLUMNS - J % PAD_COLUMNS), W.dtype)], 1)
        G = np.zeros((m, W.shape[1]), dtype=W.dtype)
        empty = lambda shape: np.empty(shape, dtype=W.dtype)  # noqa: E731
        multiply = np.multiply
    else:
        Xt = Xd.T.contiguous()
        W = omega
        G = torch.zeros(m, W.shape[1], dtype=W.dtype, device=W.device)
        empty = lambda shape: torch.empty(shape, dtype=W.dtype, device=W.device)  # noqa: E731
        multiply = torch.mul
    # vech rows of feature a: the pairs (a, a), (a, a + 1), ..., (a, d1 − 1), from starts[a]
    starts = np.concatenate([[0], np.cumsum(np.arange(d1, 0, -1))]).tolist()
    rows = min(n, max(256, BLOCK_ENTRIES // m))
    groups, a0 = [], 0  # features whose pair rows fit one block of ``rows`` rows together
    while a0 < d1:
        a1 = a0 + 1
        while a1 < d1 and (starts[a1 + 1] - starts[a0]) * rows <= BLOCK_ENTRIES:
            a1 += 1
        groups.append((a0, a1))
        a0 = a1
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        for a0, a1 in groups:
            lo, hi = starts[a0], starts[a1]
            Z = empty((hi - lo, r1 - r0))
            for a in range(a0, a1):
                multiply(Xt[a:, r0:r1], Xt[a, r0:r1], out=Z[starts[a] - lo : starts[a + 1] - lo])
            G[lo:hi] += Z @ W[r0:r1]
    return torch.from_numpy(G[:, :J]) if isinstance(G, np.ndarray) else G


def softmax_hessian_matmat(Xd: torch.Tensor, prob: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """(Σ_i (x̃_i x̃_iᵀ) ⊗ Λ_i) V for one vector (p,) or several (p, m), never forming the Hessian.

    With V̇ = X̃V (each column of V seen as a (d+1, K) matrix), Λ_i v̇_i = p_i ∘ v̇_i −
    p_i (p_iᵀ v̇_i), and the product is X̃ᵀ of those rows: two (n, d+1)·(d+1, K·m) matrix
    products and O(n·K·m) elementwise work, ≈ 2·n·(d+1)·K·m multiply-adds.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    >>> P = torch.softmax(torch.tensor([[0.1, 0.5, -0.2], [1.0, 0.0, 0.3], [0.0, 0.2, 0.4]],
    ...                                dtype=torch.float64), dim=1)
    >>> v = torch.arange(6.0, dtype=torch.float64)
    >>> H = softmax_loss_hessian(X, P)
    >>> bool(torch.allclose(softmax_hessian_matmat(X, P, v), H @ v, rtol=1e-14, atol=1e-14))
    True
    """
    n, d1 = Xd.shape
    k = prob.shape[1]
    single = V.dim() == 1
    m = 1 if single else V.shape[1]
    if single:  # Λ_i v̇_i = p_i ∘ (v̇_i − p_iᵀv̇_i)
        F = Xd @ V.view(d1, k)
        return (Xd.T @ (prob * (F - (prob * F).sum(1, keepdim=True)))).view(-1)
    P = prob.unsqueeze(2)
    F = (Xd @ V.reshape(d1, k * m)).view(n, k, m)  # v̇_i for every column
    R = P * (F - (P * F).sum(1, keepdim=True))
    return (Xd.T @ R.view(n, k * m)).view(d1 * k, m)
