"""BADGE: diverse, uncertain batches from gradient embeddings (Ash et al., 2020).

Each candidate is embedded as the gradient of its loss at the model's own prediction ŷ with
respect to the last layer's parameters, g(x) = h(x) ⊗ ∂ℓ(f(x), ŷ)/∂f, where h(x) is the
last layer's input with its bias column: [x, 1] for a GLM, the penultimate activations for a
torch network ending in ``nn.Linear``. The norm of g(x) grows with uncertainty; the batch is
k-means++ seeding on the embeddings: the largest norm first, then each next item drawn with
probability ∝ its squared distance to the nearest item already chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from strategies._order import n_picks, order_scores
from strategies.registry import strategy


def _last_layer_input(model: Any, X: torch.Tensor) -> torch.Tensor:
    """h(x) with a trailing 1 for the bias: what the last layer of ``model`` multiplies."""
    import torch
    from torch import nn

    from alloop.models.glm import GLM
    from alloop.models.mlp import TorchModel

    if isinstance(model, GLM):
        h = model.design(X)
        return h if model.fit_intercept else torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
    module = getattr(model, "module_", None)
    if isinstance(model, TorchModel) and isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Linear):
        params = model.params(model.theta_)
        body = {k: v for k, v in params.items() if not k.startswith(f"{len(module) - 1}.")}
        h = torch.func.functional_call(module[:-1], (body, model.buffers_), (X,))
        return torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
    raise TypeError(
        f"badge needs the last layer's input of the model; {type(model).__name__} is neither an "
        "alloop GLM nor a TorchModel whose module is an nn.Sequential ending in nn.Linear"
    )


def gradient_embedding(model: Any, X: Any) -> np.ndarray:
    """g(x) = vec(h(x) ⊗ ∂ℓ/∂f at ŷ), one row per item, shape (n, (d_h + 1)·K).

    The last layer's bias is included as h's trailing 1 (for a GLM without intercept the
    trailing block is still the gradient of a would-be bias). The layout is the layer's
    parameters (weight rows, then bias), flattened row by row. It is computed on the model's
    device, one row block at a time (``model.row_blocks``), and returned as float64.
    """
    import torch

    from alloop.models import likelihoods as lk
    from alloop.models.tensors import as_dense, to_numpy

    parts = []
    for _, block in model.row_blocks(X):
        Xb = as_dense(block)
        with torch.no_grad():
            f = model.output(model.theta_, Xb)
            if model.likelihood == "bernoulli":
                y_hat = (f[:, 0] > 0).to(f.dtype)
            else:
                y_hat = f.argmax(dim=1)
            r = lk.dnll_df(model.likelihood, f, y_hat)  # (n, K)
            h = _last_layer_input(model, Xb)  # (n, d_h + 1)
            parts.append(to_numpy((h.unsqueeze(2) * r.unsqueeze(1)).reshape(Xb.shape[0], -1)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def kmeanspp_order(E: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding of the rows of ``E``: the largest norm first, then D² sampling.

    When every remaining row coincides with a chosen one (all D² = 0) the next pick is
    uniform among the rows not chosen yet.

    Examples
    --------
    >>> import numpy as np
    >>> E = np.array([[0.0, 0.1], [3.0, 0.0], [0.0, 0.2]])
    >>> int(kmeanspp_order(E, 1, np.random.default_rng(0))[0])
    1
    """
    E = np.asarray(E, dtype=np.float64)
    n = E.shape[0]
    order = [int(np.argmax((E**2).sum(axis=1)))]
    d2 = ((E - E[order[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        d2[order] = 0.0
        total = d2.sum()
        if total > 0:
            i = int(rng.choice(n, p=d2 / total))
        else:
            i = int(rng.choice(np.setdiff1d(np.arange(n), order)))
        order.append(i)
        d2 = np.minimum(d2, ((E - E[i]) ** 2).sum(axis=1))
    return np.asarray(order, dtype=np.int64)


@strategy(
    "badge",
    "BADGE: k-means++ seeding on last-layer gradient embeddings at the predicted label.",
    needs=("classification", "gradients"),
)
def badge_scores(
    model: Any, X_pool: Any, *, rng: np.random.Generator | None = None, **context: Any
) -> np.ndarray:
    rng = np.random.default_rng(0) if rng is None else rng
    n = X_pool.shape[0]
    order = kmeanspp_order(gradient_embedding(model, X_pool), n_picks(context, n), rng)
    return order_scores(order, n)
