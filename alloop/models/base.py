"""The model protocol every part of alloop talks to.

Two levels:

* :class:`Model` — what the loop and the non-gradient strategies need: ``task``, ``classes_``,
  ``s`` and ``with_s`` (the regularity, None where the model has none), ``fit(X, y,
  classes=)``, ``predict``, ``clone`` (and ``predict_proba`` for classification, which the
  probability strategies and metrics check for). Any scikit-learn estimator fits it through
  :class:`alloop.models.SklearnModel`.
* :class:`DifferentiableModel` — adds the view the tangent and influence math needs: the
  parameters as one flat vector ``theta_`` (of the model's ``dtype`` on its ``device``:
  float64 on the CPU by default), a pure output function ``output(theta, X)``,
  per-point losses, the regularizer ``e^s · C(θ)`` and its ``s``.

The training objective is ``F(θ; s) = Σ_i ℓ(z_i; θ) + e^s · C(θ)`` (summed loss; see
``docs/math.md``).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from alloop.models import likelihoods as lk
from alloop.models.tensors import (
    DEVICE_BATCH_ROWS,
    DTYPE,
    as_features,
    resolve_device,
    resolve_dtype,
    to_numpy,
)

Task = Literal["classification", "regression"]


@runtime_checkable
class Model(Protocol):
    """Anything the loop can fit and evaluate: exactly what :mod:`alloop.loop` calls.

    ``s`` is the log regularity the loop carries from round to round: a float (the GLMs, the
    MLP), a vector (a hierarchical model's (s0, s1)), or None for a model without one (a
    scikit-learn estimator); the loop never assumes which, it only hands it back to
    ``with_s``. ``fit`` receives ``classes=`` (every class the labels may take) for
    classification.
    """

    task: Task
    classes_: np.ndarray | None
    s: Any

    def with_s(self, s: Any) -> Model:
        """A copy at regularity ``s`` (None where the model has none: the model itself)."""
        ...

    def fit(self, X: Any, y: np.ndarray, classes: Any | None = None) -> Model: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def clone(self) -> Model: ...


class NotDifferentiableError(TypeError, ValueError):
    """Raised when a gradient-based strategy meets a model without the gradient protocol."""


class DifferentiableModel(ABC):
    """Base class of models with a flat parameter vector and a pure output function.

    Subclasses set ``likelihood`` and ``n_outputs`` and implement :meth:`output`,
    :meth:`init_params` and :meth:`_fit_params`. After :meth:`fit`, ``theta_`` holds θ* and
    ``X_train_`` / ``y_train_`` hold the (encoded) training data as tensors, which the tangent
    and influence solvers use.
    """

    likelihood: lk.Likelihood
    #: log of the regularization strength λ = e^s.
    s: float
    #: residual variance of the Gaussian likelihood (regression only).
    sigma2: float = 1.0
    #: if True, each fit estimates ``sigma2`` jointly with θ (:meth:`_fit_sigma2`).
    estimate_sigma2: bool = False
    #: the joint fit stops when σ² changes by less than this, relatively, in one step.
    sigma2_tol: float = 1e-10
    #: at most this many θ-refits of the joint fit (a warning says if it did not converge).
    sigma2_max_iter: int = 200
    #: σ² is kept at least this fraction of Var(y) (an exact fit would drive it to 0).
    sigma2_floor: float = 1e-8
    #: where θ, the training data and every score's tensors live (see :meth:`place`).
    device: torch.device = torch.device("cpu")
    #: their floating dtype: float64 on the CPU unless asked otherwise.
    dtype: torch.dtype = DTYPE

    def __init__(self) -> None:
        self.classes_: np.ndarray | None = None
        self.theta_: torch.Tensor | None = None
        self.X_train_: torch.Tensor | None = None
        self.y_train_: torch.Tensor | None = None

    # ----------------------------------------------------------------- device and dtype
    def place(self, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None) -> None:
        """Set the device ("cpu", "cuda", "cuda:i" or "auto": cuda when present) and dtype
        ("float32", "float64", or None: float64 on the CPU, float32 on an accelerator)."""
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)

    def as_features(self, X: Any) -> torch.Tensor:
        """``X`` as a feature tensor of this model's dtype on its device."""
        return as_features(X, self.dtype, self.device)

    def row_blocks(
        self, X: Any, batch_size: int = DEVICE_BATCH_ROWS
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(slice, block)`` over rows of X, each block moved to the device on its own.

        The pool is converted on the CPU and only one block at a time is copied to an
        accelerator, so a pool larger than device memory is still scored; on the CPU the
        whole pool is one block.
        """
        Xt = as_features(X, self.dtype)
        n = Xt.shape[0]
        if self.device.type == "cpu" or n <= batch_size:
            yield slice(0, n), Xt.to(self.device)
            return
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            index = torch.arange(start, stop)
            block = Xt.index_select(0, index) if Xt.is_sparse else Xt[start:stop]
            yield slice(start, stop), block.to(self.device)

    # ----------------------------------------------------------------- structure
    @property
    def task(self) -> Task:
        return "regression" if self.likelihood == "gaussian" else "classification"

    @property
    def lam(self) -> float:
        """Regularization strength λ = e^s."""
        return float(np.exp(self.s))

    @abstractmethod
    def init_params(self, n_features: int, n_outputs: int) -> torch.Tensor:
        """A starting flat parameter vector for data with these sizes (sets the layout)."""

    @abstractmethod
    def output(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Model output f(X; θ), shape (n, K). Must be a pure function of ``theta``."""

    def penalty_mask(self) -> torch.Tensor:
        """1 for parameters the default complexity penalizes, 0 for biases."""
        assert self.theta_ is not None
        return torch.ones_like(self.theta_)

    def complexity(self, theta: torch.Tensor) -> torch.Tensor:
        """C(θ); the default is ½‖θ‖² over the penalized (non-bias) parameters."""
        return 0.5 * torch.sum(self.penalty_mask() * theta**2)

    def null_space(self) -> torch.Tensor | None:
        """Orthonormal directions along which the objective is exactly flat, shape (p, m).

        Softmax models with a free intercept per class are invariant to adding a constant to
        every intercept; solvers remove those directions (a pseudo-inverse). ``None`` if none.
        """
        return None

    # ----------------------------------------------------------------- losses
    def loss(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-point loss ℓ(z_i; θ), shape (n,)."""
        return lk.nll(self.likelihood, self.output(theta, X), y, self.sigma2)

    def objective(
        self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, s: float | None = None
    ) -> torch.Tensor:
        """F(θ; s) = Σ_i ℓ(z_i; θ) + e^s C(θ)."""
        s = self.s if s is None else s
        return self.loss(theta, X, y).sum() + float(np.exp(s)) * self.complexity(theta)

    def output_jvp(
        self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, ḟ_v) = (f(X; θ), J_f(X)·v), by one forward-mode JVP."""
        return torch.func.jvp(lambda t: self.output(t, X), (theta,), (v,))

    def per_point_grads(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-point gradients g_i = ∇_θ ℓ(z_i; θ), shape (n, p)."""
        grad = torch.func.grad(lambda th, x, t: self.loss(th, x.unsqueeze(0), t.unsqueeze(0))[0])
        return torch.func.vmap(grad, in_dims=(None, 0, 0))(theta, X, y)

    # ----------------------------------------------------------------- labels
    def encode_y(self, y: np.ndarray) -> torch.Tensor:
        """Map raw labels to the tensor the likelihood expects (class index / float)."""
        y = np.asarray(y)
        if self.task == "regression":
            return torch.as_tensor(y.astype(np.float64)).to(self.device, self.dtype)
        assert self.classes_ is not None
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(
                f"labels {sorted(set(y[unknown].tolist()))!r} are not among the model's classes "
                f"{self.classes_.tolist()!r}; declare every class up front (`classes=`)."
            )
        t = torch.as_tensor(index, dtype=torch.long, device=self.device)
        return t.to(self.dtype) if self.likelihood == "bernoulli" else t

    # ----------------------------------------------------------------- fit / predict
    def fit(self, X: Any, y: Any, classes: Any | None = None) -> DifferentiableModel:
        """Fit θ* on (X, y) and keep the training data for the tangent solvers."""
        Xt = self.as_features(X)
        y = np.asarray(y)
        if Xt.shape[0] != len(y):
            raise ValueError(f"X has {Xt.shape[0]} rows but y has {len(y)} labels")
        if Xt.shape[0] == 0:
            raise ValueError("cannot fit on an empty labeled set")
        if self.task == "classification":
            self.classes_ = np.unique(y) if classes is None else np.asarray(sorted(classes))
            if self.classes_.size < 2:
                raise ValueError(
                    f"classification needs at least two classes; got {self.classes_.tolist()!r}"
                )
            self._check_class_count(len(self.classes_))
        yt = self.encode_y(y)
        k = self._n_outputs()
        warm = self.theta_ if self._warm_start_ok(Xt.shape[1], k) else None
        theta0 = warm.clone() if warm is not None else self.init_params(Xt.shape[1], k)
        self.X_train_, self.y_train_ = Xt, yt
        self.theta_ = theta0
        self.theta_ = self._fit_params(theta0, Xt, yt).detach()
        if self.likelihood == "gaussian" and self.estimate_sigma2:
            self._fit_sigma2(Xt, yt)
        return self

    def residual_sigma2(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """σ̂² = RSS/n = mean (y_i − f(x_i; θ))² at the current θ, floored at
        ``sigma2_floor``·Var(y) (and 1e-12)."""
        assert self.theta_ is not None
        with torch.no_grad():
            rss = float(((y - self.output(self.theta_, X)[:, 0]) ** 2).mean())
        floor = max(self.sigma2_floor * float(y.var(unbiased=False)), 1e-12)
        return max(rss, floor)

    def _fit_sigma2(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Fit θ and σ² jointly at fixed s: the fixed point θ = argmin_θ F(θ; s, σ²), σ² = RSS/n.

        The fixed point is the stationary point of the Gaussian negative log-likelihood with
        its normaliser, Σ_i [(y_i − f_i)²/2σ² + ½ log 2πσ²] + e^s C(θ), in (θ, σ²): alternating
        the two exact minimisations (θ at fixed σ²; σ² = RSS/n at fixed θ) never increases it.
        The last step refits θ at the σ² it stores, so θ* minimises F(θ; s) at ``self.sigma2``
        exactly -- the σ² every tangent, score and hypergradient then uses -- and σ² equals
        RSS/n to ``sigma2_tol`` (relative).
        """
        for _ in range(self.sigma2_max_iter):
            new = self.residual_sigma2(X, y)
            done = abs(new - self.sigma2) <= self.sigma2_tol * new
            self.sigma2 = new
            self.theta_ = self._fit_params(self.theta_.clone(), X, y).detach()
            if done:
                return
        import warnings

        warnings.warn(
            f"{self!r}: σ² and θ did not reach their joint fixed point in {self.sigma2_max_iter} "
            f"refits (σ² = {self.sigma2:.6g}, RSS/n = {self.residual_sigma2(X, y):.6g}); θ* is "
            "fitted at the stored σ². Fewer labeled points than parameters drive σ² towards 0: "
            "label more, or fix sigma2=",
            RuntimeWarning,
            stacklevel=3,
        )

    def _check_class_count(self, n_classes: int) -> None:
        if self.likelihood == "bernoulli" and n_classes != 2:
            raise ValueError(
                f"a Bernoulli (logistic) model takes exactly 2 classes; got {n_classes}. "
                "Use model kind 'softmax' for multi-class data."
            )

    def _n_outputs(self) -> int:
        if self.likelihood == "categorical":
            assert self.classes_ is not None
            return len(self.classes_)
        return 1

    def _warm_start_ok(self, n_features: int, n_outputs: int) -> bool:
        return False

    @abstractmethod
    def _fit_params(self, theta0: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Minimise :meth:`objective` from ``theta0``; return θ*."""

    def _check_fitted(self) -> torch.Tensor:
        if self.theta_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")
        return self.theta_

    def decision(self, X: Any) -> torch.Tensor:
        """Model output f(X; θ*) as a tensor on the model's device (logits or the regression
        mean), computed one row block at a time off the CPU (:meth:`row_blocks`)."""
        theta = self._check_fitted()
        with torch.no_grad():
            parts = [self.output(theta, block) for _, block in self.row_blocks(X)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is defined for classification models only")
        return to_numpy(lk.class_probabilities(self.likelihood, self.decision(X)))

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        if self.task == "regression":
            return to_numpy(self.decision(X)[:, 0])
        assert self.classes_ is not None
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def clone(self) -> DifferentiableModel:
        """An unfitted copy with the same hyperparameters."""
        new = copy.copy(self)
        new.theta_ = new.X_train_ = new.y_train_ = None
        new.classes_ = None
        return new

    def fit_like(
        self, selected: DifferentiableModel, X: Any, y: Any, classes: Any | None = None
    ) -> DifferentiableModel:
        """A clone of this template fitted on (X, y) at the regularity ``selected`` has.

        Usually that is ``selected.s``. A Gaussian model whose σ² is estimated is different:
        F(θ; s, σ²) = Σ(y − f)²/2σ² + e^s C(θ) is 1/σ² times Σ(y − f)²/2 + e^s σ² C(θ), so θ*
        depends on (s, σ²) only through κ = e^s σ². A regularity chosen on one data set (with
        its σ²) is carried to another as κ: θ* is fitted at κ, σ² = RSS/n of that fit, and
        s = log κ − log σ². The result is a joint fixed point (θ* minimises F at the stored s
        and σ², and σ² = RSS/n), and V(s) of the selection, evaluated at this σ², is minimal
        at this s.
        """
        new = self.with_s(selected.s).clone()
        if not (new.likelihood == "gaussian" and new.estimate_sigma2):
            return new.fit(X, y, classes)
        log_kappa = float(selected.s) + float(np.log(selected.sigma2))
        new.s, new.sigma2, new.estimate_sigma2 = log_kappa, 1.0, False
        new.fit(X, y, classes)
        assert new.X_train_ is not None and new.y_train_ is not None
        sigma2 = new.residual_sigma2(new.X_train_, new.y_train_)
        # ∇F(θ; log κ − log σ², σ²) = ∇F(θ; log κ, 1)/σ²: θ* stays the minimiser
        new.s, new.sigma2, new.estimate_sigma2 = log_kappa - float(np.log(sigma2)), sigma2, True
        return new

    def with_s(self, s: float) -> DifferentiableModel:
        """A copy with regularity ``s`` (fitted state kept as a warm start)."""
        new = copy.copy(self)
        new.s = float(s)
        return new
