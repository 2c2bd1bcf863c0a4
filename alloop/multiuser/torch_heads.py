"""Hierarchical heads over a shared torch trunk, trained by minibatch SGD/Adam with SGDF tangents.

A shared feature extractor φ(x; W) (a small MLP) feeds one linear head per user, h_u (rows
(hidden + 1) × K, bias row last), tied to a global head h_0 as the GLM version ties θ_u to θ_0
(docs/math.md §5):

    F = Σ_i ℓ(y_i | [φ(x_i; W), 1]·h_{u_i}) + e^{s_1}·½ Σ_u ‖h_u − h_0‖² + e^{s_0}·½‖M h_0‖²
        + (decay)·½‖W‖²,

with M masking h_0's bias row and a fixed weight decay on the trunk. Training is joint
minibatch SGD or Adam on one flat vector θ = (W, h_0, h_u for users with data): a step costs
the batch's forward and backward pass plus O(U·p) for the tie penalty, linear in the number of
users. Users without data are minimised out exactly — their term is zero at h_u = h_0 for any
h_0 — so they are not trained and get h_u = h_0 (and its tangents) afterwards, as in
:class:`alloop.multiuser.HierarchicalGLM`.

Tangents dθ/ds_0 and dθ/ds_1 come from :func:`alloop.tangent.sgdf.sgdf_run`, which
differentiates the minibatch run exactly: for s_k it is handed C_k as the complexity and the
other penalties folded into the batch loss (a batch of m rows carries m/n of them, so the
mean-scaled step is that of F/n). Each tangent is one run along the same seeded trajectory; at
convergence it reaches the implicit-function value −H⁻¹ρ_k.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.tensors import DTYPE, as_dense, as_features
from alloop.optim.sgdf import OPTIMIZERS, learning_rates, minibatches, sgdf_run
from alloop.regularity import heuristics as hx

__all__ = ["HierarchicalHeads"]

_HYPER = ("s0", "s1")


class HierarchicalHeads:
    """Per-user linear heads tied to a global head, over a shared MLP trunk.

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "categorical"}
    s0, s1 : float
        log λ_0 (global head penalty, bias excluded) and log λ_1 (users' deviation from h_0).
    hidden : sequence of int
        Trunk widths; the heads read the last layer (tanh activations, smooth for tangents).
    trunk_decay : float
        Fixed weight decay on every trunk parameter (not a tuned hyperparameter).
    optimizer : {"adam", "sgd"}
    lr, momentum, epochs, batch_size, schedule
        Minibatch settings (per-point learning rate, see :mod:`alloop.tangent.sgdf`).
    seed : int
        Seeds the trunk's initialisation and the batch order: a fit is deterministic.
    sigma2 : float
        Gaussian residual variance (fixed).
    warm_start : bool
        Later fits start from the previous parameters (new users from h_0). The tangents are
        then those of the run from that (s-independent) start.

    Attributes
    ----------
    trunk_ : torch.Tensor, shape (q,)
    head0_ : torch.Tensor, shape (p,)
    heads_ : torch.Tensor, shape (U, p)
    tangents_ : dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] or None
        ``{"s0": (dW, dh_0, dh_users), "s1": ...}`` from SGDF.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 2)); u = np.arange(40) % 2
    >>> y = np.sin(X[:, 0]) + 0.5 * u
    >>> model = HierarchicalHeads(hidden=(4,), epochs=5).fit_users(X, y, u, n_users=3)
    >>> model.heads_.shape, bool((model.heads_[2] == model.head0_).all())
    (torch.Size([3, 5]), True)
    """

    def __init__(
        self,
        likelihood: lk.Likelihood = "gaussian",
        s0: float = 0.0,
        s1: float = 0.0,
        *,
        hidden: Sequence[int] = (16,),
        trunk_decay: float = 1e-2,
        optimizer: str = "adam",
        lr: float = 1e-2,
        momentum: float = 0.0,
        epochs: int = 50,
        batch_size: int = 32,
        schedule: str = "constant",
        seed: int = 0,
        sigma2: float = 1.0,
        warm_start: bool = False,
        n_users: int | None = None,
    ) -> None:
        if likelihood not in lk.LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive widths; got {hidden!r}")
        if trunk_decay < 0:
            raise ValueError(f"trunk_decay must be non-negative; got {trunk_decay!r}")
        self.likelihood, self.hidden = likelihood, tuple(int(h) for h in hidden)
        self.s0, self.s1 = float(s0), float(s1)
        self.trunk_decay = float(trunk_decay)
        self.optimizer, self.lr, self.momentum = optimizer, float(lr), float(momentum)
        self.epochs, self.batch_size, self.schedule = int(epochs), int(batch_size), schedule
        self.seed, self.sigma2, self.warm_start = int(seed), float(sigma2), warm_start
        self.n_users = None if n_users is None else int(n_users)  # U for fit on pair rows
        self.trunk_: torch.Tensor | None = None
        self.head0_: torch.Tensor | None = None
        self.heads_: torch.Tensor | None = None
        self.tangents_: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self.classes_: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"HierarchicalHeads(likelihood={self.likelihood!r}, hidden={self.hidden}, "
            f"s0={self.s0:.4g}, s1={self.s1:.4g})"
        )

    # ------------------------------------------------------------------ layout
    def _shapes(self, d: int) -> list[tuple[int, int]]:
        widths = [d, *self.hidden]
        return [(widths[i], widths[i + 1]) for i in range(len(self.hidden))]

    def _trunk_size(self, d: int) -> int:
        return sum(a * b + b for a, b in self._shapes(d))

    def features(self, trunk: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """[φ(X; W), 1], shape (n, hidden[-1] + 1): the heads' design."""
        h, offset = X, 0
        for a, b in self._shapes(X.shape[1]):
            W = trunk[offset : offset + a * b].view(a, b)
            c = trunk[offset + a * b : offset + a * b + b]
            offset += a * b + b
            h = torch.tanh(h @ W + c)
        return torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)

    def _outputs(self, trunk, heads, X, users) -> torch.Tensor:
        phi = self.features(trunk, X)
        rows = heads.index_select(0, users).view(phi.shape[0], phi.shape[1], -1)
        return torch.einsum("nj,njk->nk", phi, rows)

    @property
    def task(self) -> str:
        return "regression" if self.likelihood == "gaussian" else "classification"

    def _check_fitted(self) -> None:
        if self.trunk_ is None:
            raise RuntimeError("HierarchicalHeads is not fitted yet; call fit(X, y, users) first")

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.heads_.shape[0]

    def encode_y(self, y: Any) -> torch.Tensor:
        y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if self.likelihood == "gaussian":
            return torch.as_tensor(y.astype(np.float64))
        index = np.searchsorted(self.classes_, y)
        if np.any(index >= len(self.classes_)) or np.any(self.classes_[index] != y):
            raise ValueError(f"labels outside the known classes {self.classes_.tolist()!r}")
        return torch.as_tensor(index, dtype=DTYPE if self.likelihood == "bernoulli" else torch.long)

    # ------------------------------------------------------------------ the loop's protocol
    @property
    def s(self) -> np.ndarray:
        """The hyperparameter vector (s_0, s_1)."""
        return np.array([self.s0, self.s1])

    def with_s(self, s: Any) -> HierarchicalHeads:
        """An unfitted copy at s = (s_0, s_1)."""
        values = np.asarray(s, dtype=np.float64).reshape(-1)
        if values.shape != (2,) or not np.isfinite(values).all():
            raise ValueError(f"s of HierarchicalHeads is the finite pair (s0, s1); got {s!r}")
        new = self.clone()
        new.s0, new.s1 = float(values[0]), float(values[1])
        return new

    def clone(self) -> HierarchicalHeads:
        """An unfitted copy with the same settings."""
        return HierarchicalHeads(
            self.likelihood, self.s0, self.s1, hidden=self.hidden, trunk_decay=self.trunk_decay,
            optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, epochs=self.epochs,
            batch_size=self.batch_size, schedule=self.schedule, seed=self.seed,
            sigma2=self.sigma2, warm_start=self.warm_start, n_users=self.n_users,
        )

    def fit(self, X: Any, y: Any, classes: Any = None) -> HierarchicalHeads:
        """Train on pair rows ``[user, x...]`` (:func:`alloop.multiuser.pool.pair_rows`)."""
        from alloop.multiuser.pool import split_pairs

        features, users = split_pairs(X)
        return self.fit_users(features, y, users, n_users=self.n_users, classes=classes)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for pair rows ``[user, x...]``."""
        from alloop.multiuser.pool import split_pairs

        return self.predict_users(*split_pairs(X))

    #: the strategies it scores itself: SLD along its SGDF tangents
    regularity_strategies = ("sld",)

    def regularity_scores(
        self, name: str, X: Any, *, X_val: Any = None, y_val: Any = None,
        variant: str = "unlabeled", y_pool: Any = None, **_: Any,
    ) -> np.ndarray:
        """The ``sld`` strategy on pair rows: :meth:`sld_scores` with the SGDF tangents."""
        from alloop.multiuser.pool import split_pairs

        if name != "sld":
            raise ValueError(f"HierarchicalHeads scores sld only (SGDF tangents); got {name!r}")
        return self.sld_scores(*split_pairs(X), y_pool if variant == "labeled" else None)

    # ------------------------------------------------------------------ fitting
    def fit_users(
        self,
        X: Any,
        y: Any,
        users: Any,
        n_users: int | None = None,
        classes: Any = None,
        *,
        track_tangents: bool = True,
    ) -> HierarchicalHeads:
        """Train trunk and heads on rows (X, y) of ``users``; SGDF tangents unless disabled."""
        Xt = as_dense(as_features(X))
        y_raw = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        users = np.asarray(users).astype(np.int64)
        n = Xt.shape[0]
        if n == 0 or len(y_raw) != n or users.shape != (n,):
            raise ValueError(
                f"need n ≥ 1 rows with one label and one user each; got {n} rows, "
                f"{len(y_raw)} labels, users of shape {users.shape}"
            )
        n_users = int(users.max()) + 1 if n_users is None else int(n_users)
        if users.min() < 0 or users.max() >= n_users:
            raise ValueError(f"user indices must lie in [0, {n_users}); pass n_users= large enough")
        if self.task == "classification":
            self.classes_ = np.unique(y_raw) if classes is None else np.asarray(sorted(classes))
            if self.likelihood == "bernoulli" and self.classes_.size != 2:
                raise ValueError(f"bernoulli needs 2 classes; got {self.classes_.tolist()!r}")
        k = len(self.classes_) if self.likelihood == "categorical" else 1
        p = (self.hidden[-1] + 1) * k
        q = self._trunk_size(Xt.shape[1])
        yt = self.encode_y(y_raw)

        active = np.unique(users)
        local = np.full(n_users, -1)
        local[active] = np.arange(active.size)
        rows_users = torch.as_tensor(local[users])
        A = active.size

        warm = (
            self.warm_start and self.trunk_ is not None
            and self.trunk_.numel() == q and self.head0_.numel() == p
        )
        if warm:
            trunk, head0 = self.trunk_, self.head0_
            old = self.heads_
            heads = torch.stack([
                old[u] if u < old.shape[0] else head0 for u in active.tolist()
            ]) if A else head0.new_zeros(0, p)
        else:
            gen = torch.Generator().manual_seed(self.seed)
            parts = []
            for a, b in self._shapes(Xt.shape[1]):
                parts += [torch.randn(a * b, generator=gen, dtype=DTYPE) / np.sqrt(a),
                          torch.zeros(b, dtype=DTYPE)]
            trunk = torch.cat(parts)
            head0 = torch.zeros(p, dtype=DTYPE)
            heads = torch.zeros(A, p, dtype=DTYPE)
        theta0 = torch.cat([trunk, head0, heads.reshape(-1)])
        mask = torch.ones(self.hidden[-1] + 1, k, dtype=DTYPE)
        mask[-1] = 0.0
        mask = mask.reshape(-1)
        lam = {"s0": float(np.exp(self.s0)), "s1": float(np.exp(self.s1))}

        def split(theta):
            return theta[:q], theta[q : q + p], theta[q + p :].view(A, p)

        penalties = {
            "s0": lambda t: 0.5 * (mask * split(t)[1] ** 2).sum(),
            "s1": lambda t: 0.5 * ((split(t)[2] - split(t)[1]) ** 2).sum(),
        }

        def decay(t):
            return 0.5 * self.trunk_decay * (split(t)[0] ** 2).sum()

        def run(tracked: str, track: bool):
            other = "s1" if tracked == "s0" else "s0"

            def batch_loss(theta, index):
                W, _, H = split(theta)
                f = self._outputs(W, H, Xt[index], rows_users[index])
                loss = lk.nll(self.likelihood, f, yt[index], self.sigma2).sum()
                fixed = lam[other] * penalties[other](theta) + decay(theta)
                return loss + len(index) / n * fixed

            batches = minibatches(n, self.batch_size, self.epochs, self.seed)
            lrs = learning_rates(self.lr, len(batches), self.schedule)
            return sgdf_run(
                batch_loss, penalties[tracked], theta0, batches, lrs, n=n,
                s=getattr(self, tracked), optimizer=self.optimizer, momentum=self.momentum,
                track_tangent=track,
            )

        first = run("s1", track_tangents)
        W, h0, H = split(first.theta)
        self.trunk_, self.head0_ = W.clone(), h0.clone()
        self.heads_ = h0.expand(n_users, p).clone()
        self.heads_[torch.as_tensor(active)] = H
        self.tangents_ = None
        if track_tangents:
            self.tangents_ = {}
            for name, result in (("s1", first), ("s0", run("s0", True))):
                dW, dh0, dH = split(result.tangent)
                d_users = dh0.expand(n_users, p).clone()
                d_users[torch.as_tensor(active)] = dH
                self.tangents_[name] = (dW.clone(), dh0.clone(), d_users)
        self.n_outputs_, self.n_features_ = k, Xt.shape[1]
        self.counts_ = np.bincount(users, minlength=n_users)
        return self

    # ------------------------------------------------------------------ use
    def decision(self, X: Any, users: Any) -> torch.Tensor:
        """f(x_i; W, h_{u_i}), shape (n, K)."""
        self._check_fitted()
        Xt = as_dense(as_features(X))
        with torch.no_grad():
            return self._outputs(self.trunk_, self.heads_, Xt, torch.as_tensor(np.asarray(users)))

    def predict_users(self, X: Any, users: Any) -> np.ndarray:
        """Each row's prediction by its user's head."""
        f = self.decision(X, users)
        if self.task == "regression":
            return f[:, 0].numpy()
        probs = lk.class_probabilities(self.likelihood, f)
        return self.classes_[probs.argmax(1).numpy()]

    def output_tangent(self, X: Any, users: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, ḟ) with ḟ = J_f(x)·dθ/ds_name: trunk and the user's head moved together."""
        self._check_fitted()
        if self.tangents_ is None:
            raise RuntimeError("fit with track_tangents=True to use the tangents")
        if name not in _HYPER:
            raise KeyError(f"unknown hyperparameter {name!r}; expected one of {_HYPER}")
        Xt = as_dense(as_features(X))
        u = torch.as_tensor(np.asarray(users))
        dW, _, dH = self.tangents_[name]
        f, fdot = torch.func.jvp(
            lambda W, H: self._outputs(W, H, Xt, u), (self.trunk_, self.heads_), (dW, dH)
        )
        return f.detach(), fdot.detach()

    def sld_scores(
        self, X: Any, users: Any, y: Any = None, hyperparameters: Sequence[str] = _HYPER
    ) -> np.ndarray:
        """Σ_k E_y[(g·dθ/ds_k)²] per (user, item) candidate (labeled with ``y``).

        As :func:`alloop.multiuser.sld_scores`, with the JVP through the trunk as well as the
        user's head (the SGDF tangent moves both).
        """
        labels = None if y is None else self.encode_y(y)
        out = None
        for name in (hyperparameters,) if isinstance(hyperparameters, str) else hyperparameters:
            f, fdot = self.output_tangent(X, users, name)
            part = hx.squared_directional_derivative(self.likelihood, f, fdot, labels, self.sigma2)
            out = part if out is None else out + part
        return out.numpy()
