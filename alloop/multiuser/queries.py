"""Multi-user queries: SLD / STI scores of (user, item) candidates, and batch selection.

A candidate is a row x offered to user u; labelling it adds ℓ((x, y); θ_u) to the objective,
whose gradient lives in θ_u's block only. So the joint-space heuristics of docs/math.md §4
reduce to the user's own parameters and tangent:

* SLD(u, x) = Σ_k E_y[(g(x, y; θ_u)·dθ_u/ds_k)²] over the hyperparameters k ∈ {s_0, s_1}
  chosen — the squared gradient of the point's loss with respect to (s_0, s_1);
* STI(u, x) = Σ_k E_y[(g(x, y; θ_u)·q_{u,k})²], q_k = H⁻¹θ̂_k with θ̂_k = θ̇_k/‖θ̇_k‖ over the
  joint parameter vector (one block solve per hyperparameter and fit).

Both use the closed forms of :mod:`alloop.regularity.heuristics` on the GLM output f(x; θ_u)
and the JVP ḟ = f(x; v_u) (a GLM is linear in θ). A user without labels has θ_u = θ_0 and
inherits θ_0's tangent, so their items are ranked from the first round. With labels ``y`` the
scores are the labeled variants.

Batches are taken globally (top k over every user's candidates) or with a per-user quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from alloop.multiuser.outputs import per_user_outputs_many
from alloop.multiuser.tangent import HYPERPARAMETERS
from alloop.regularity import heuristics as hx

if TYPE_CHECKING:
    from alloop.multiuser.model import HierarchicalGLM

__all__ = ["select_candidates", "sld_scores", "sti_directions", "sti_scores"]

#: scores this close (relatively) are ties in :func:`select_candidates`. The SSI scores of one
#: candidate agree to about 1e-9 between two float computation orders; those of two identical
#: candidates in one run differ by about 1e-13.
TIE_RTOL = 1e-9

#: candidate rows per batch of output JVPs.
BATCH_SIZE = 16384


def _hyper_indices(hyperparameters: Sequence[str] | str) -> list[int]:
    names = (hyperparameters,) if isinstance(hyperparameters, str) else tuple(hyperparameters)
    unknown = [h for h in names if h not in HYPERPARAMETERS]
    if unknown or not names:
        raise ValueError(
            f"hyperparameters must be a non-empty subset of {HYPERPARAMETERS}; "
            f"got {hyperparameters!r}"
        )
    return [HYPERPARAMETERS.index(h) for h in names]


def candidate_inputs(
    model: HierarchicalGLM, X: Any, users: Any, y: Any, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validated (design, user index, encoded labels or None) of candidate rows (users[i], X[i])."""
    model._check_fitted()
    design = model.design(X)
    n = design.shape[0]
    u = model.user_index(users, n, model.n_users_)
    labels = None
    if y is not None:
        y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if len(y) != n:
            raise ValueError(f"got {len(y)} labels for {n} candidate rows")
        labels = model.encode_y(y)
    if not (isinstance(batch_size, int | np.integer) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    return design, u, labels

def _scores_along(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    directions: list[torch.Tensor],
    y: Any,
    batch_size: int,
) -> np.ndarray:
    """Σ_v (g·v_u)² (labeled) or Σ_v E_y[(g·v_u)²] (unlabeled) per candidate row."""
    design, u, labels = candidate_inputs(model, X, users, y, batch_size)
    n = design.shape[0]
    out = torch.zeros(n, dtype=torch.float64)
    for start in range(0, n, batch_size):
        part = slice(start, min(start + batch_size, n))
        f, *fdots = per_user_outputs_many(design[part], [model.thetas_, *directions], u[part])
        for fdot in fdots:
            out[part] += hx.squared_directional_derivative(
                model.likelihood, f, fdot, None if labels is None else labels[part], model.sigma2
            )
    return out.numpy()


def sld_scores(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    y: Any = None,
    *,
    hyperparameters: Sequence[str] | str = HYPERPARAMETERS,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """SLD of each candidate (users[i], X[i]) with that user's θ_u and tangents.

    Parameters
    ----------
    model : HierarchicalGLM
        Fitted.
    X : array-like, shape (n, d)
        Candidate items' features.
    users : array-like of int, shape (n,)
        The user each candidate would be asked of.
    y : array-like, optional
        Labels: the labeled variant (g·θ̇_u)². Without: E_y[(g·θ̇_u)²] under the user's model.
    hyperparameters : "s0", "s1" or both (default)
        The tangents summed over.
    batch_size : int

    Returns
    -------
    np.ndarray, shape (n,)
        Higher = ask first.

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.multiuser import HierarchicalGLM
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(30, 2)); u = np.arange(30) % 3
    >>> model = HierarchicalGLM().fit_users(X, X[:, 0] + u, u, n_users=4)
    >>> scores = sld_scores(model, X[:4], [0, 1, 2, 3])  # user 3 has no labels, still scored
    >>> bool(scores[3] > 0)
    True
    """
    tangents = model.tangents()
    directions = [tangents.users[k] for k in _hyper_indices(hyperparameters)]
    return _scores_along(model, X, users, directions, y, batch_size)


def sti_directions(
    model: HierarchicalGLM, hyperparameters: Sequence[str] | str = HYPERPARAMETERS
) -> list[torch.Tensor]:
    """Per-user blocks q_u of q_k = H⁻¹θ̂_k for each hyperparameter k, each shape (U, p).

    θ̂_k is θ_k's joint tangent (θ̇_0, θ̇_1, ..., θ̇_U) normalised over all blocks; the solve is
    the block solve of :class:`alloop.multiuser.schur.ArrowSystem`. A zero tangent gives q = 0.
    """
    tangents = model.tangents()
    system = model.system()
    out = []
    for k in _hyper_indices(hyperparameters):
        norm = tangents.norm(HYPERPARAMETERS[k])
        if norm == 0.0:
            out.append(torch.zeros_like(model.thetas_))
            continue
        _, q_users = system.solve(tangents.global_[k] / norm, tangents.users[k] / norm)
        out.append(q_users)
    return out


def sti_scores(
    model: HierarchicalGLM,
    X: Any,
    users: Any,
    y: Any = None,
    *,
    hyperparameters: Sequence[str] | str = HYPERPARAMETERS,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """STI of each candidate (users[i], X[i]): Σ_k E_y[(g·q_{u,k})²] (labeled with ``y``).

    Same parameters as :func:`sld_scores`; one block solve per hyperparameter per call.
    """
    directions = sti_directions(model, hyperparameters)
    return _scores_along(model, X, users, directions, y, batch_size)


def select_candidates(
    scores: Any,
    users: Any,
    k: int,
    *,
    quota: int | None = None,
    rng: np.random.Generator | None = None,
    rtol: float = TIE_RTOL,
) -> np.ndarray:
    """Indices of the k best candidates, globally or at most ``quota`` per user.

    Scores that agree to ``rtol`` (relatively) are ties. Candidates whose features are
    identical score the same in exact arithmetic, but the float results can differ in their
    last digits. The tolerance keeps that rounding noise from choosing between them: the
    tie-break does.

    Parameters
    ----------
    scores : array-like, shape (n,)
        Higher = ask first (NaN is not allowed).
    users : array-like of int, shape (n,)
        Each candidate's user.
    k : int
        Batch size.
    quota : int, optional
        At most this many candidates per user in the batch (taken best-first); ``None``
        selects globally. With a quota the batch can be shorter than k when too few users
        have candidates.
    rng : numpy.random.Generator, optional
        Breaks ties among equal scores at random (default: by position).
    rtol : float
        Scores within ``rtol·max(|a|, |b|)`` of each other are equal. Sorted scores that are
        each that close to the next form one tie. Use 0 for exact equality only.

    Returns
    -------
    np.ndarray of int
        Positions in ``scores``, best first.

    Examples
    --------
    >>> select_candidates([5.0, 4.0, 3.0, 1.0], [0, 0, 0, 1], 2).tolist()
    [0, 1]
    >>> select_candidates([5.0, 4.0, 3.0, 1.0], [0, 0, 0, 1], 2, quota=1).tolist()
    [0, 3]
    >>> select_candidates([1.0, 1.0 + 1e-15, 0.5], [0, 0, 1], 1).tolist()  # a tie: by position
    [0]
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    users = np.asarray(users).reshape(-1)
    if users.shape != scores.shape:
        raise ValueError(f"got {users.size} users for {scores.size} scores")
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} scores are NaN")
    if not (isinstance(k, int | np.integer) and k >= 0):
        raise ValueError(f"k must be a non-negative integer; got {k!r}")
    if quota is not None and not (isinstance(quota, int | np.integer) and quota >= 1):
        raise ValueError(f"quota must be a positive integer or None; got {quota!r}")
    if not rtol >= 0:
        raise ValueError(f"rtol must be a non-negative float; got {rtol!r}")
    tiebreak = rng.random(scores.size) if rng is not None else np.arange(scores.size)
    order = np.lexsort((tiebreak, _tie_levels(scores, rtol)))
    if quota is None:
        return order[:k]
    # Rank of each candidate within its user (0 = that user's best); keep rank < quota.
    ranked_users = users[order]
    sort_by_user = np.argsort(ranked_users, kind="stable")
    grouped = ranked_users[sort_by_user]
    starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
    rank_sorted = np.arange(grouped.size) - np.repeat(starts, np.diff(np.r_[starts, grouped.size]))
    rank = np.empty_like(rank_sorted)
    rank[sort_by_user] = rank_sorted
    return order[rank < quota][:k]


def _tie_levels(scores: np.ndarray, rtol: float) -> np.ndarray:
    """Each score's rank among the distinct values of ``scores``, 0 = best.

    Values that agree to ``rtol`` count as one value.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    scale = np.maximum(np.abs(ranked[1:]), np.abs(ranked[:-1]))
    new_value = np.abs(np.diff(ranked)) > rtol * scale
    levels = np.empty(scores.size, dtype=np.int64)
    levels[order] = np.concatenate([np.zeros(min(scores.size, 1), dtype=np.int64),
                                    np.cumsum(new_value)])
    return levels
