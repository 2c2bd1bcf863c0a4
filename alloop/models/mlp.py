"""Torch modules as differentiable models: any ``nn.Module`` factory, and an MLP.

Past 400 lines: one model class whose training options (optimiser, schedule, σ² alternation, tangent tracking) are all read by its one ``fit``.

The module's parameters live in one flat vector θ (float64 on the CPU by default); :meth:`TorchModel.output` unflattens
it into views and calls the module through ``torch.func.functional_call``, so it is a pure
function of θ that ``grad``, ``jvp`` and ``vmap`` compose with.

Objective scaling. θ* minimises the summed objective F(θ) = Σ_i ℓ(z_i; θ) + e^s C(θ) like every
alloop model. Full-batch L-BFGS minimises F/n; minibatch steps ("sgd", "adam") follow the
gradient of the mean-scaled batch objective (1/|B|) Σ_{i∈B} ℓ_i + (e^s/n) C, an unbiased
estimate of ∇F/n (see :mod:`alloop.optim.sgdf`). Learning rates are therefore per point.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel
from alloop.models.tensors import as_dense, to_numpy
from alloop.optim.sgdf import (
    OPTIMIZERS,
    SCHEDULES,
    QuadraticPenalty,
    learning_rates,
    minibatches,
    sgdf_run,
)

ModuleFactory = Callable[[int, int], nn.Module]
TRAINERS = (*OPTIMIZERS, "lbfgs")


class TorchModel(DifferentiableModel):
    """A torch ``nn.Module`` with a likelihood and a penalty e^s·½‖weights‖², as a model.

    Parameters
    ----------
    module_fn : callable
        ``module_fn(n_features, n_outputs) -> nn.Module`` mapping (n, n_features) inputs to
        (n, n_outputs) outputs (logits, or the regression mean). Called at every fit, under
        the seed, so clones and refits rebuild the same architecture and initialisation.
    likelihood : {"gaussian", "bernoulli", "categorical"}
    s : float
        log λ of the penalty.
    optimizer : {"adam", "sgd", "lbfgs"}
        Minibatch Adam or SGD (with ``momentum``), or full-batch L-BFGS to gradient
        tolerance ``tol`` (for a tightly converged θ*).
    lr, momentum, betas, eps, epochs, batch_size, schedule, lr_min
        Minibatch settings; ``schedule`` is "constant", "linear" or "cosine" (from ``lr`` to
        ``lr_min``).
    tol, max_iter
        L-BFGS: stop when max |∇(F/n)| ≤ tol, or after ``max_iter`` iterations.
    seed : int
        Seeds the initialisation and the batch order: a fit is deterministic.
    sigma2 : float or None
        Gaussian residual variance; ``None`` estimates it after each fit.
    penalize_bias : bool
        Include parameters named ``*bias`` in C (default: excluded).
    track_tangent : bool
        Carry the regularity tangent along minibatch training (SGDF); it is then stored
        in ``tangent_`` and returned by ``regularity_tangent(model, "sgdf")``.
    warm_start : bool
        Start a refit from the current θ (same data shape) instead of the seeded init.
    device : {"cpu", "cuda", "auto"} or "cuda:<index>"
        Where the module, θ, the training data and the scores' tensors live; "auto" is cuda
        when present. The initialisation is drawn on the CPU, so it is the same on any device.
    dtype : {"float64", "float32"} or None
        Their precision; None is float64 on the CPU and float32 on a GPU.

    Attributes
    ----------
    theta_ : torch.Tensor
        θ* (flat, of the model's dtype, on its device).
    theta_init_ : torch.Tensor
        The starting point of the last fit.
    batch_order_ : list of numpy.ndarray or None
        Row indices of every minibatch step of the last fit (None after L-BFGS).
    lrs_ : list of float or None
        Learning rate of every step (None after L-BFGS).
    tangent_ : torch.Tensor or None
        dθ_T/ds of the last training run if tracked, else None.
    param_layout_ : list of (name, shape, offset)
        Where each module parameter sits in θ.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
    >>> model = TorchModel(lambda d, k: nn.Linear(d, k), "bernoulli", optimizer="lbfgs")
    >>> float((model.fit(X, y).predict(X) == y).mean()) > 0.9
    True
    """

    def __init__(
        self,
        module_fn: ModuleFactory,
        likelihood: lk.Likelihood = "categorical",
        s: float = 0.0,
        *,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        epochs: int = 100,
        batch_size: int = 64,
        schedule: str = "constant",
        lr_min: float = 0.0,
        tol: float = 1e-10,
        max_iter: int = 2000,
        seed: int = 0,
        sigma2: float | None = 1.0,
        penalize_bias: bool = False,
        track_tangent: bool = False,
        warm_start: bool = False,
        device: str = "cpu",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.place(device, dtype)
        if likelihood not in lk.LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {lk.LIKELIHOODS}")
        if optimizer not in TRAINERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {TRAINERS}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
        if not np.isfinite(s):
            raise ValueError(f"s = log λ must be finite; got {s!r}")
        if track_tangent and optimizer == "lbfgs":
            raise ValueError(_NO_LBFGS_TANGENT)
        self.module_fn = module_fn
        self.likelihood = likelihood
        self.s = float(s)
        self.optimizer = optimizer
        self.lr, self.momentum, self.betas, self.eps = lr, momentum, tuple(betas), eps
        self.epochs, self.batch_size = epochs, batch_size
        self.schedule, self.lr_min = schedule, lr_min
        self.tol, self.max_iter = tol, max_iter
        self.seed = seed
        self.estimate_sigma2 = sigma2 is None
        self.sigma2 = 1.0 if sigma2 is None else float(sigma2)
        self.penalize_bias = penalize_bias
        self.track_tangent = track_tangent
        self.warm_start = warm_start
        self._track = track_tangent  # this fit's choice; fit(..., track_tangent=) overrides
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.module_: nn.Module | None = None
        self.param_layout_: list[tuple[str, torch.Size, int]] = []
        self.penalty_mask_: torch.Tensor | None = None
        self.n_features_: int | None = None
        self.n_outputs_: int | None = None
        self.theta_init_: torch.Tensor | None = None
        self.batch_order_: list[np.ndarray] | None = None
        self.lrs_: list[float] | None = None
        self.tangent_: torch.Tensor | None = None
        self.tangent_s_: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(likelihood={self.likelihood!r}, s={self.s:.4g})"

    # ----------------------------------------------------------------- layout
    def init_params(self, n_features: int, n_outputs: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = self.module_fn(n_features, n_outputs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"module_fn must return an nn.Module; got {type(module).__name__}")
        module = module.to(device=self.device, dtype=self.dtype)
        for layer in module.modules():  # dropout is off for fitting and prediction (see mc_proba)
            if isinstance(layer, nn.modules.dropout._DropoutNd):
                layer.eval()
        layout, chunks, mask = [], [], []
        offset = 0
        for name, param in module.named_parameters():
            layout.append((name, param.shape, offset))
            flat = param.detach().reshape(-1)
            chunks.append(flat)
            is_bias = name.rsplit(".", 1)[-1] == "bias"
            mask.append(torch.full_like(flat, 0.0 if is_bias and not self.penalize_bias else 1.0))
            offset += flat.numel()
        if not layout:
            raise ValueError("the module has no parameters to fit")
        self.module_ = module.requires_grad_(False)
        self.buffers_ = dict(module.named_buffers())
        self.param_layout_ = layout
        self.penalty_mask_ = torch.cat(mask)
        self.n_features_, self.n_outputs_ = n_features, n_outputs
        return torch.cat(chunks).clone()

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """θ as the module's named parameters (views into ``theta``, no copies)."""
        # one split (not a slice per parameter): its backward is a single concatenation
        pieces = theta.split([shape.numel() for _, shape, _ in self.param_layout_])
        return {
            name: piece.view(shape)
            for (name, shape, _), piece in zip(self.param_layout_, pieces, strict=True)
        }

    def output(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        if self.module_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")
        X = as_dense(X)
        f = torch.func.functional_call(self.module_, (self.params(theta), self.buffers_), (X,))
        return f.reshape(X.shape[0], -1)

    def penalty_mask(self) -> torch.Tensor:
        if self.penalty_mask_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")
        return self.penalty_mask_

    def _warm_start_ok(self, n_features: int, n_outputs: int) -> bool:
        return (
            self.warm_start
            and self.theta_ is not None
            and (self.n_features_, self.n_outputs_) == (n_features, n_outputs)
        )

    # ----------------------------------------------------------------- fitting
    def fit(
        self, X: Any, y: Any, classes: Any | None = None, *, track_tangent: bool | None = None
    ) -> TorchModel:
        """Fit θ*; ``track_tangent`` overrides the constructor flag for this fit (SGDF).

        Sparse ``X`` is densified.
        """
        track = self.track_tangent if track_tangent is None else track_tangent
        if track and self.optimizer == "lbfgs":
            raise ValueError(_NO_LBFGS_TANGENT)
        self._track = track
        return super().fit(as_dense(self.as_features(X)), y, classes)

    def _fit_sigma2(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """The σ²/θ alternation of :class:`DifferentiableModel`, to 1e-3 in σ² or 10 refits: the
        last step refits θ at the stored σ², so θ* minimises F at the σ² the tangents use
        (docs/math.md §1).

        Why looser than the GLMs' 1e-10: each step is a full non-convex refit, and a flexible
        network's RSS keeps falling as σ² does, so 1e-10 costs hundreds of refits.
        """
        for _ in range(10):
            new = self.residual_sigma2(X, y)
            done = abs(new - self.sigma2) <= 1e-3 * new
            self.sigma2 = new
            self.theta_ = self._fit_params(self.theta_.clone(), X, y).detach()
            if done:
                return

    def _fit_params(self, theta0: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.theta_init_ = theta0.clone()
        self.batch_order_ = self.lrs_ = self.tangent_ = self.tangent_s_ = None
        if self.optimizer == "lbfgs":
            return self._lbfgs(theta0, X, y)
        n = X.shape[0]
        batches = minibatches(n, min(self.batch_size, n), self.epochs, self.seed)
        # the default ½‖θ‖² on the penalty mask is differentiated in closed form, not by autograd
        default_c = type(self).complexity is DifferentiableModel.complexity
        result = sgdf_run(
            lambda theta, index: self.loss(theta, X[index], y[index]).sum(),
            QuadraticPenalty(self.penalty_mask()) if default_c else self.complexity,
            theta0,
            batches,
            learning_rates(self.lr, len(batches), self.schedule, self.lr_min),
            n=n,
            s=self.s,
            optimizer=self.optimizer,
            momentum=self.momentum,
            betas=self.betas,
            eps=self.eps,
            track_tangent=self._track,
        )
        self.batch_order_, self.lrs_ = result.batch_order, result.lrs
        if result.tangent is not None:
            self.tangent_, self.tangent_s_ = result.tangent, self.s
        return result.theta

    def _lbfgs(self, theta0: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = X.shape[0]
        theta = theta0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [theta], lr=1.0, max_iter=self.max_iter, max_eval=2 * self.max_iter,
            tolerance_grad=self.tol, tolerance_change=0.0, history_size=50,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            value = self.objective(theta, X, y) / n
            value.backward()
            return value

        opt.step(closure)
        theta = theta.detach()
        g = torch.func.grad(lambda t: self.objective(t, X, y) / n)(theta)
        if g.abs().max() > 1e3 * self.tol:
            warnings.warn(
                f"{self!r}: L-BFGS stopped with max |∇F/n| = {g.abs().max():.2e} > tol "
                f"{self.tol:.1e}; raise max_iter",
                RuntimeWarning,
                stacklevel=4,
            )
        return theta

    @property
    def has_dropout(self) -> bool:
        """Whether the fitted module holds dropout layers, so :meth:`mc_proba` can sample."""
        return self.module_ is not None and any(
            isinstance(layer, nn.modules.dropout._DropoutNd) for layer in self.module_.modules()
        )

    def mc_proba(self, X: Any, n_samples: int = 20, seed: int = 0) -> np.ndarray:
        """MC-dropout predictive laws, shape (n_samples, n, C): one pass per dropout mask.

        The dropout layers are active only here; fits, predictions, Hessians and tangents see
        the deterministic network. Equal seeds give equal samples.
        """
        if not self.has_dropout:
            raise ValueError(
                f"{self!r} has no dropout layers; use MLP(dropout=0.1) or put nn.Dropout in "
                "your module to sample MC-dropout predictions"
            )
        theta, X = self._check_fitted(), as_dense(self.as_features(X))
        layers = [m for m in self.module_.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        with torch.random.fork_rng(devices=self._rng_devices()), torch.no_grad():
            torch.manual_seed(seed)
            for layer in layers:
                layer.train()
            try:
                out = [lk.class_probabilities(self.likelihood, self.output(theta, X))
                       for _ in range(n_samples)]
            finally:
                for layer in layers:
                    layer.eval()
        return to_numpy(torch.stack(out))

    def _rng_devices(self) -> list[int]:
        """The CUDA devices whose generator ``mc_proba`` seeds (and restores after)."""
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def clone(self) -> TorchModel:
        new = super().clone()
        new._reset_fitted()
        return new


_NO_LBFGS_TANGENT = (
    "the SGDF tangent is carried along minibatch training; optimizer 'lbfgs' has none. "
    "Use optimizer 'sgd' or 'adam' with track_tangent=True, or compute the tangent after "
    "fitting with regularity_tangent(model, 'cg')"
)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
}


def mlp_module(
    n_features: int, n_outputs: int, hidden: Sequence[int], activation: str, dropout: float = 0.0
) -> nn.Module:
    """Linear → activation (→ dropout) → … → Linear with the given hidden widths."""
    widths = [n_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        act = ACTIVATIONS[activation]()
        # dropout shares the activation's slot, so parameter names do not depend on it
        layers += [nn.Linear(a, b), nn.Sequential(act, nn.Dropout(dropout)) if dropout > 0 else act]
    layers.append(nn.Linear(widths[-1], n_outputs))
    return nn.Sequential(*layers)


class MLP(TorchModel):
    """A fully connected network, e.g. ``MLP(hidden=(256, 256))`` for 64-256-256-10.

    Parameters
    ----------
    hidden : sequence of int
        Hidden layer widths (empty: a GLM trained like a network).
    activation : {"tanh", "relu", "gelu", "silu", "softplus", "sigmoid", "elu"}
        Smooth activations (tanh, softplus, gelu, silu) give a well-defined Hessian.
    dropout : float
        Dropout rate after each hidden layer, used only by MC-dropout sampling
        (:meth:`TorchModel.mc_proba`, the ``bald`` strategies); fitting and prediction are
        deterministic and the same as without dropout.
    likelihood, s, **kwargs
        As in :class:`TorchModel`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> m = MLP(hidden=(8,), s=-2.0, optimizer="lbfgs", tol=1e-6).fit(X, y)
    >>> float((m.predict(X) == y).mean()) > 0.95
    True
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64,),
        activation: str = "tanh",
        likelihood: lk.Likelihood = "categorical",
        s: float = 0.0,
        dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive; got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        self.hidden, self.activation, self.dropout = hidden, activation, float(dropout)
        module_fn = functools.partial(
            mlp_module, hidden=hidden, activation=activation, dropout=self.dropout
        )
        super().__init__(module_fn, likelihood, s, **kwargs)

    def __repr__(self) -> str:
        return (
            f"MLP(hidden={self.hidden}, activation={self.activation!r}, "
            f"likelihood={self.likelihood!r}, s={self.s:.4g})"
        )

    def null_space(self) -> torch.Tensor | None:
        """Softmax logits are invariant to a common shift: the unpenalized output bias moves
        all logits together, an exactly flat direction of the objective."""
        if self.likelihood != "categorical" or self.penalize_bias:
            return None
        name, shape, offset = self.param_layout_[-1]
        if name.rsplit(".", 1)[-1] != "bias":
            return None
        q = torch.zeros(self.penalty_mask_.numel(), dtype=self.dtype, device=self.device)
        q[offset : offset + shape.numel()] = 1.0 / np.sqrt(shape.numel())
        return q.reshape(-1, 1)
