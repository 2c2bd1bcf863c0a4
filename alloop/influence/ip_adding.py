"""IP-adding: which candidate points would improve the validation predictions if added.

The paper's method (arXiv 2504.13586, ``docs/math.md`` §6), restated for alloop's objective.

**Scale.** The paper writes the empirical risk as a mean, R(θ) = (1/N)Σℓ + reg, and adding z_i
moves the parameters by Δθ_i = −(1/N) H_R⁻¹ g(z_i). alloop's objective is the *sum*
F(θ) = Σℓ + e^s C(θ) = N·R(θ), so H_F = N·H_R and the same change reads

    Δθ_i = −H_F⁻¹ g(z_i)

which is the first-order effect of giving z_i unit weight in F (dθ*/dε at ε = 0, times 1).
Everything below uses H_F: the Hessian :func:`alloop.linalg.solve` already works with.

**Aligned prediction.** Each validation point j gets one scalar prediction f_j and a target τ_j:

* Bernoulli: f_j = P(y = 1 | x_j), τ_j = y_j ∈ {0, 1} (the paper's setting);
* categorical: the margin of the true class, f_j = ½(1 + p_{y_j} − p_{r_j}) with r_j the
  runner-up class at θ̂ and τ_j = 1. With two classes this is P(true class), and the score
  below equals the Bernoulli one (a softmax and a logistic model of the same data agree);
* Gaussian: f_j = the predicted mean, τ_j = y_j.

Then Δf_ij = ∇_θ f_j · Δθ_i and the sign-aligned contribution score is

    score_i = Σ_j w_j · s_j · Δf_ij,   s_j = sign(τ_j − f_j)

(+|Δf_ij| when the change moves f_j toward its target, −|Δf_ij| otherwise; w_j = 1 is the
paper's Method 1). The score is linear in Δθ_i, so it needs one solve with one right-hand side,
u = Σ_j w_j s_j ∇_θ f_j; the full Δf matrix needs one solve with the validation Jacobian as
right-hand sides. Neither refits anything.

**Unlabeled candidates.** E_y[score_i(y)] under the model's own predictive distribution is
identically zero: the score is linear in g(z_i), and E_{y∼p(·|x, θ̂)}[∇_θ log p(y | x, θ̂)] = 0.
:func:`expected_scores` therefore defaults to the expected *Method-1 gain*
E_y[max(score_i(y), 0)] — label the point, keep it only if it helps — which equals
½·E_y|score_i(y)| because the mean is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from alloop.influence._inputs import check_validation_classes, encode_labels, fitted_theta
from alloop.linalg import solve
from alloop.models import likelihoods as lk
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import DTYPE, as_dense, as_features, matmul

Weights = Literal["sign", "residual"] | np.ndarray | torch.Tensor | None


@dataclass(frozen=True)
class AlignedPredictions:
    """The scalar prediction of each validation point and what it should move toward.

    Attributes
    ----------
    f : Tensor, shape (n_val,)
        Aligned prediction f_j (see the module docstring).
    target : Tensor, shape (n_val,)
        τ_j.
    output_weights : Tensor, shape (n_val, K)
        c_j = ∂f_j/∂(model output of x_j), so that ∇_θ f_j = Σ_k c_jk ∇_θ output_jk.
    """

    f: torch.Tensor
    target: torch.Tensor
    output_weights: torch.Tensor

    @property
    def direction(self) -> torch.Tensor:
        """s_j = sign(τ_j − f_j)."""
        return torch.sign(self.target - self.f)


_WHAT = "IP-adding"
_ONE_CLASS = (
    "IP-adding (the sign-aligned score would only reward pushing every prediction toward one "
    "class)"
)


# ----------------------------------------------------------------------------- pieces
def aligned_predictions(model: DifferentiableModel, X_val: Any, y_val: Any) -> AlignedPredictions:
    """Aligned predictions f_j, targets τ_j and c_j = ∂f_j/∂output_j at the model's θ̂.

    Parameters
    ----------
    model : DifferentiableModel
        A fitted model.
    X_val, y_val : array-like
        Validation features and raw labels (or targets for regression).
    """
    theta = fitted_theta(model, _WHAT)
    Xv = as_features(X_val)
    yv = encode_labels(model, y_val, "validation labels", Xv.shape[0])
    check_validation_classes(model, yv, _ONE_CLASS)
    with torch.no_grad():
        out = model.output(theta, Xv)
    if model.likelihood == "bernoulli":
        p = torch.sigmoid(out[:, 0])
        return AlignedPredictions(p, yv.to(DTYPE), (p * (1 - p)).unsqueeze(1))
    if model.likelihood == "categorical":
        P = torch.softmax(out, dim=1)
        true = yv.long()
        others = P.scatter(1, true.view(-1, 1), -1.0)
        runner = others.argmax(dim=1)
        idx = torch.arange(P.shape[0])
        f = 0.5 * (1.0 + P[idx, true] - P[idx, runner])
        K = P.shape[1]
        e = torch.nn.functional.one_hot(true, K).to(DTYPE) - torch.nn.functional.one_hot(runner, K).to(DTYPE)
        Lam = lk.output_hessian("categorical", out)  # ∂p/∂logits
        c = 0.5 * torch.einsum("nkl,nk->nl", Lam, e)
        return AlignedPredictions(f, torch.ones_like(f), c)
    return AlignedPredictions(out[:, 0], yv.to(DTYPE), torch.ones_like(out))


def _output_vjp(model: DifferentiableModel, theta: torch.Tensor, X: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Σ_j Σ_k M_jk ∇_θ output_jk(θ), shape (p,)."""
    _, vjp = torch.func.vjp(lambda t: model.output(t, X), theta)
    return vjp(M)[0]


def _output_jacobian(model: DifferentiableModel, theta: torch.Tensor, X: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Rows ∇_θ (Σ_k c_jk output_jk(θ)), shape (n, p)."""
    if isinstance(model, GLM):  # output is linear in θ: the row is x̃_j ⊗ c_j
        Xd = model.design(X)
        return (Xd.unsqueeze(2) * c.unsqueeze(1)).reshape(Xd.shape[0], -1)
    Xd = as_dense(X)
    row = torch.func.grad(lambda t, x, cj: (model.output(t, x.unsqueeze(0))[0] * cj).sum())
    return torch.func.vmap(row, in_dims=(None, 0, 0))(theta, Xd, c)


def _grad_dot(model: DifferentiableModel, X: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """G V with G the per-point loss gradients at θ̂ (rows g(z_i)), without forming G for GLMs.

    For a GLM, g(z_i) = x̃_i ⊗ r_i with r_i = ∂ℓ/∂f, so (G V)_i = Σ_k r_ik (X̃ V_k)_i: one
    (sparse) product per output instead of an n × p matrix.

    Parameters
    ----------
    V : Tensor, shape (p,) or (p, m)
    """
    theta = model._check_fitted()
    squeeze = V.dim() == 1
    V = V.unsqueeze(1) if squeeze else V
    if isinstance(model, GLM):
        d, K = model.n_features_, model.n_outputs_
        r = lk.dnll_df(model.likelihood, model.output(theta, X), y, model.sigma2)
        V3 = V.reshape(d + int(model.fit_intercept), K, V.shape[1])
        out = torch.zeros(X.shape[0], V.shape[1], dtype=DTYPE)
        for k in range(K):
            Z = matmul(X, V3[:d, k, :])
            if model.fit_intercept:
                Z = Z + V3[d, k, :]
            out = out + r[:, k : k + 1] * Z
    else:
        out = model.per_point_grads(theta, X, y) @ V
    return out[:, 0] if squeeze else out


# ----------------------------------------------------------------------------- Δf and scores
def prediction_changes(
    model: DifferentiableModel,
    X_cand: Any,
    y_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    method: str = "exact",
    damping: float = 0.0,
) -> torch.Tensor:
    """Δf_ij: first-order change of validation prediction j if candidate i is added.

    Computed as Δf = −G_cand (H⁻¹ J_valᵀ): one solve whose right-hand sides are the columns of
    the aligned validation Jacobian, then one product with the candidates' gradients.

    Parameters
    ----------
    model : DifferentiableModel
        Fitted on the base training set (its Hessian is H).
    X_cand, y_cand : array-like
        Candidate points (raw labels).
    X_val, y_val : array-like
        Validation points; ``y_val`` selects the aligned prediction (true-class margin).
    method : {"exact", "cg"}
        Passed to :func:`alloop.linalg.solve`.
    damping : float
        Added to H's diagonal.

    Returns
    -------
    Tensor, shape (n_cand, n_val)
    """
    theta = fitted_theta(model, _WHAT)
    aligned = aligned_predictions(model, X_val, y_val)
    Xc = as_features(X_cand)
    yc = encode_labels(model, y_cand, "candidate labels", Xc.shape[0])
    J = _output_jacobian(model, theta, as_features(X_val), aligned.output_weights)
    A = solve(model, J.T.contiguous(), method, damping=damping)
    return -_grad_dot(model, Xc, yc, A)


def _validation_weights(aligned: AlignedPredictions, weights: Weights) -> torch.Tensor:
    if weights is None or (isinstance(weights, str) and weights == "sign"):
        return torch.ones_like(aligned.f)
    if isinstance(weights, str):
        if weights == "residual":
            return (aligned.target - aligned.f).abs()
        raise ValueError(f"unknown weights {weights!r}; expected 'sign', 'residual' or an array")
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if w.shape != aligned.f.shape:
        raise ValueError(f"weights must have one entry per validation point ({aligned.f.shape[0]}); got shape {tuple(w.shape)}")
    return w


def _score_direction(
    model: DifferentiableModel, X_val: Any, y_val: Any, weights: Weights, method: str, damping: float
) -> torch.Tensor:
    """v = H⁻¹ u with u = Σ_j w_j s_j ∇_θ f_j, so that score_i = −g(z_i)·v."""
    theta = fitted_theta(model, _WHAT)
    aligned = aligned_predictions(model, X_val, y_val)
    a = _validation_weights(aligned, weights) * aligned.direction
    u = _output_vjp(model, theta, as_features(X_val), a.unsqueeze(1) * aligned.output_weights)
    return solve(model, u, method, damping=damping)


def ip_adding_scores(
    model: DifferentiableModel,
    X_cand: Any,
    y_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    weights: Weights = None,
    method: str = "exact",
    damping: float = 0.0,
) -> torch.Tensor:
    """Sign-aligned contribution score of each labeled candidate (paper's Algorithm 1).

    score_i = Σ_j w_j · sign(τ_j − f_j) · Δf_ij; positive means adding z_i moves the validation
    predictions toward their targets.

    Parameters
    ----------
    weights : None, "sign", "residual" or array of shape (n_val,)
        w_j. ``None``/"sign": 1 (Method 1). "residual": |τ_j − f_j|, which makes the score the
        first-order decrease of ½Σ_j(τ_j − f_j)².
    method, damping
        Passed to :func:`alloop.linalg.solve`.

    Returns
    -------
    Tensor, shape (n_cand,)

    Examples
    --------
    >>> import numpy as np
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> model = LogisticGLM(s=0.0).fit(X[:20], y[:20])
    >>> ip_adding_scores(model, X[20:30], y[20:30], X[30:], y[30:]).shape
    torch.Size([10])
    """
    v = _score_direction(model, X_val, y_val, weights, method, damping)
    Xc = as_features(X_cand)
    yc = encode_labels(model, y_cand, "candidate labels", Xc.shape[0])
    return -_grad_dot(model, Xc, yc, v)


def expected_scores(
    model: DifferentiableModel,
    X_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    reduction: Literal["positive", "mean", "abs"] = "positive",
    weights: Weights = None,
    method: str = "exact",
    damping: float = 0.0,
) -> torch.Tensor:
    """Scores of unlabeled candidates: an expectation over the model's predictive p(y | x).

    Parameters
    ----------
    reduction : {"positive", "mean", "abs"}
        "positive": E_y[max(score(y), 0)], the expected gain of labeling the point and adding
        it only if its score is positive (Method 1). "mean": E_y[score(y)], which is zero up to
        rounding for likelihood models (see the module docstring); kept for checks.
        "abs": E_y|score(y)| (= 2 × "positive").

    Returns
    -------
    Tensor, shape (n_cand,)
    """
    theta = fitted_theta(model, _WHAT)
    if model.task != "classification":
        raise ValueError(
            "expected_scores averages over class labels; it needs a classifier. For regression "
            "score labeled candidates with ip_adding_scores."
        )
    if reduction not in ("positive", "mean", "abs"):
        raise ValueError(f"unknown reduction {reduction!r}; expected 'positive', 'mean' or 'abs'")
    v = _score_direction(model, X_val, y_val, weights, method, damping)
    Xc = as_features(X_cand)
    assert model.classes_ is not None
    with torch.no_grad():
        P = lk.class_probabilities(model.likelihood, model.output(theta, Xc))
    n = Xc.shape[0]
    per_label = torch.stack(
        [-_grad_dot(model, Xc, model.encode_y(np.full(n, c)), v) for c in model.classes_], dim=1
    )
    if reduction == "positive":
        per_label = per_label.clamp(min=0.0)
    elif reduction == "abs":
        per_label = per_label.abs()
    return (P * per_label).sum(dim=1)
