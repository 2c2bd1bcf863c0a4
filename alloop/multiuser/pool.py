"""(user, item) pairs as the loop's candidate space: pair rows, a pair pool, a per-user quota.

A candidate is a (user, item) pair. Its feature row is ``[user, x...]``: column 0 holds the
user's index (0..U-1, as a float), the rest the item's features. That one matrix is what the
:class:`~alloop.data.pool.Pool`, the test and validation splits and the hierarchical model's
``fit`` / ``predict`` carry, so the ordinary :class:`~alloop.loop.ActiveLoop` runs multi-user
unchanged. Candidate ids are ``"<user>/<item>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.data.pool import Pool

__all__ = ["SEPARATOR", "PairPool", "UserQuota", "pair_rows", "split_pairs"]

#: between the user and the item in a candidate id: "u17/m123"
SEPARATOR = "/"


def pair_rows(X: Any, users: Any) -> np.ndarray:
    """``[user, x...]`` rows: each feature row prefixed by its user's index.

    Examples
    --------
    >>> pair_rows([[0.5, 1.0], [2.0, 3.0]], [3, 0]).tolist()
    [[3.0, 0.5, 1.0], [0.0, 2.0, 3.0]]
    """
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    users = np.asarray(users)
    if X.ndim != 2 or users.shape != (X.shape[0],):
        raise ValueError(
            f"need X (n, d) and one user per row (n,); got {X.shape} and {users.shape}"
        )
    if users.size and (not np.issubdtype(users.dtype, np.integer) or users.min() < 0):
        raise ValueError(f"users must be integer indices 0..U-1; got {users[:5]!r}…")
    return np.column_stack([users.astype(np.float64), X])


def split_pairs(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """(item features, user indices) of pair rows ``[user, x...]``; the inverse of
    :func:`pair_rows`.

    Examples
    --------
    >>> features, users = split_pairs([[3.0, 0.5, 1.0]])
    >>> features.tolist(), users.tolist()
    ([[0.5, 1.0]], [3])
    """
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(
            f"multi-user rows are [user, x...] (pair_rows): 2-D with the user index in column 0 "
            f"and at least one feature; got shape {X.shape}"
        )
    users = X[:, 0]
    if users.size and (not np.all(users == np.round(users)) or users.min() < 0):
        raise ValueError(
            "column 0 of multi-user rows must hold user indices (0, 1, …); build the rows with "
            "alloop.multiuser.pool.pair_rows(X, users)"
        )
    return X[:, 1:], users.astype(np.int64)


class PairPool(Pool):
    """A pool of (user, item) candidates: rows ``[user, x...]``, ids ``"<user>/<item>"``.

    Parameters
    ----------
    X : array-like, shape (n, d)
        The item features of each candidate.
    users : array-like of int, shape (n,)
        Each candidate's user, an index into ``user_names``.
    items : sequence, shape (n,)
        Each candidate's item name.
    user_names : sequence of str
        The users' names (annotator ids when each user answers their own candidates).

    Examples
    --------
    >>> pool = PairPool([[1.0], [2.0], [3.0]], [0, 1, 1], ["a", "a", "b"], ["ann", "bob"])
    >>> pool.ids.tolist(), pool.users.tolist(), pool.n_users
    (['ann/a', 'bob/a', 'bob/b'], [0, 1, 1], 2)
    """

    def __init__(
        self, X: Any, users: Any, items: Sequence[Any], user_names: Sequence[str],
        raw: Sequence[Any] | None = None,
    ) -> None:
        users = np.asarray(users)
        names = tuple(str(u) for u in user_names)
        if len(set(names)) != len(names):
            raise ValueError("user names must be unique")
        if users.size and (users.min() < 0 or users.max() >= len(names)):
            raise ValueError(
                f"users must index user_names (0..{len(names) - 1}); got range "
                f"[{users.min()}, {users.max()}]"
            )
        if len(items) != users.size:
            raise ValueError(f"{users.size} users but {len(items)} items")
        ids = [f"{names[u]}{SEPARATOR}{i}" for u, i in zip(users.tolist(), items, strict=True)]
        super().__init__(pair_rows(X, users), ids=ids, raw=raw)
        self.users = users.astype(np.int64)
        self.user_names = names
        self._user = {u: i for i, u in enumerate(names)}

    @property
    def n_users(self) -> int:
        return len(self.user_names)

    def user_index(self, name: str) -> int:
        """The index of the user called ``name``; an unknown name lists the known ones."""
        try:
            return self._user[str(name)]
        except KeyError:
            raise KeyError(
                f"{name!r} is not one of the pool's users; known users: "
                f"{', '.join(self.user_names[:10])}{' …' if self.n_users > 10 else ''}"
            ) from None

    def user_of(self, item_id: str) -> str:
        """The name of the user a candidate id belongs to."""
        return self.user_names[self.users[self.index_of([item_id])[0]]]


@dataclass(frozen=True)
class UserQuota:
    """A batch rule: the best candidates, at most ``quota`` per user per round.

    Pass it as the loop's ``batch_rule``; it reads each candidate's user from column 0 of the
    pair rows (:func:`split_pairs`) and takes candidates best-first
    (:func:`alloop.multiuser.select_candidates`), so a batch can be shorter than k when too
    few users have candidates left.

    Examples
    --------
    >>> X = pair_rows([[0.0], [0.0], [0.0]], [0, 0, 1])
    >>> UserQuota(1)([3.0, 2.0, 1.0], 2, X_pool=X).tolist()
    [0, 2]
    """

    quota: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.quota, int | np.integer) and self.quota >= 1):
            raise ValueError(f"quota must be a positive integer; got {self.quota!r}")

    def __call__(
        self, scores: Any, k: int, *, X_pool: Any, rng: np.random.Generator | None = None,
        **_: Any,
    ) -> np.ndarray:
        from alloop.multiuser.queries import select_candidates

        _, users = split_pairs(X_pool)
        return select_candidates(scores, users, k, quota=self.quota, rng=rng)
