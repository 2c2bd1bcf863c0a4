"""The plumbing of the regularity scores: the checked tangent, and closed forms over row batches.

A score needs a few parameter-space directions per fit; :func:`score_rows` then runs one output
JVP per direction and row batch and applies the heuristic's closed form to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from alloop.linalg import SOLVERS, Inverse
from alloop.models.base import DifferentiableModel
from alloop.models.glm import GLM
from alloop.models.tensors import as_features, matmul, rows, to_numpy
from alloop.regularity.hypergradient import tangent_options
from alloop.tangent import regularity_rhs, regularity_tangent

#: rows per output-JVP batch: a 100 000 × 64 pool is 13 matrix products per direction.
BATCH_SIZE = 8192


def solve_method_for(tangent_method: str, solve_method: str | None) -> str:
    """The linear solver for q, u, a, b: the tangent's own if it is one, else CG."""
    if solve_method is not None:
        return solve_method
    return tangent_method if tangent_method in SOLVERS else "cg"


def finite(x: torch.Tensor, what: str, model: DifferentiableModel) -> torch.Tensor:
    """``x`` itself, or an error naming ``what`` and the model when it is not finite."""
    if not torch.isfinite(x).all():
        raise FloatingPointError(
            f"{what} of {model!r} is not finite: the Hessian is (nearly) singular at "
            f"λ = e^s = {model.lam:.3g}. Use a larger s, or pass damping > 0."
        )
    return x


def checked_tangent(
    model: DifferentiableModel,
    tangent_method: str,
    damping: float,
    solve_options: dict[str, Any] | None = None,
    inverse: Inverse | None = None,
) -> torch.Tensor:
    """θ̇ by ``tangent_method``, detached, with an error naming the model if it is not finite.

    The one place the scores (and the strategies' per-round state) get their tangent from.
    """
    if tangent_method == "exact" and inverse is not None and inverse.method == "exact":
        theta_dot = -inverse(regularity_rhs(model))  # the "exact" tangent, on the shared factor
    else:
        options = tangent_options(damping, tangent_method, solve_options)
        theta_dot = regularity_tangent(model, tangent_method, **options)
    return finite(theta_dot.detach(), "the regularity tangent θ̇", model)


def _labels(model: DifferentiableModel, y: Any, n: int) -> torch.Tensor | None:
    if y is None:
        return None
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if len(y) != n:
        raise ValueError(f"got {len(y)} labels for {n} rows")
    return model.encode_y(y)


def _batches(
    X: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Row blocks of the host tensor X, each copied to ``device`` on its own (the whole pool
    never is: a pool larger than the accelerator's memory is scored block by block)."""
    if not (isinstance(batch_size, int | np.integer) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    n = X.shape[0]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        block = rows(X, np.arange(start, stop)) if X.is_sparse else X[start:stop]
        yield slice(start, stop), block.to(device)


def _jvps(
    model: DifferentiableModel, X: torch.Tensor, directions: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(f, [ḟ_v for v in directions]) on a row batch: one ``output_jvp`` per direction.

    A GLM is linear in θ, so ḟ_v = f(X; v); with several directions (SSI's three) f and every
    ḟ_v come from ONE product of X with the stacked weights, which reads X once instead of
    twice per direction (1.4–1.7× faster on a 100,000 × 64 pool; benchmarks/scoring.py). With
    one direction that gains nothing, so the plain path is kept.
    """
    theta = model.theta_
    if isinstance(model, GLM) and len(directions) > 1:
        return _glm_outputs(model, X, [theta, *directions])
    fdots = []
    f = None
    for v in directions:
        out, fdot = model.output_jvp(theta, X, v)
        f = out.detach() if f is None else f
        fdots.append(fdot.detach())
    return f, fdots


def _glm_outputs(
    model: GLM, X: torch.Tensor, thetas: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """f(X; t) for every t in ``thetas`` by one matrix product; returns (first, [rest])."""
    parts = [model.weights(t) for t in thetas]
    W = torch.cat([w for w, _ in parts], dim=1)
    if model.fit_intercept and not X.is_sparse:
        # the intercepts added inside the product (one pass over the output, not two)
        out = torch.addmm(torch.cat([b for _, b in parts]), X, W)
    else:
        out = matmul(X, W)
        if model.fit_intercept:
            out = out + torch.cat([b for _, b in parts])
    # One contiguous (n, K) block per θ: the closed forms run faster on contiguous rows.
    outs = out.detach().view(out.shape[0], len(thetas), -1).transpose(0, 1).contiguous()
    return outs[0], list(outs[1:])


def score_rows(
    model: DifferentiableModel,
    X: Any,
    y: Any,
    directions: list[torch.Tensor],
    batch_size: int,
    closed_form: Callable[[torch.Tensor, list[torch.Tensor], torch.Tensor | None], torch.Tensor],
) -> np.ndarray:
    """Apply ``closed_form(f, fdots, y_batch)`` over row batches of X; one float per row.

    X is converted to the model's dtype on the host; each batch alone goes to the model's
    device, and its scores come back as float64.
    """
    Xt = as_features(X, model.dtype)
    yt = _labels(model, y, Xt.shape[0])
    out = np.empty(Xt.shape[0], dtype=np.float64)
    for index, block in _batches(Xt, batch_size, model.device):
        f, fdots = _jvps(model, block, directions)
        value = closed_form(f, fdots, None if yt is None else yt[index])
        out[index] = to_numpy(value)
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(
            f"{int((~np.isfinite(out)).sum())} scores of {model!r} are not finite: the Hessian "
            f"is (nearly) singular at λ = e^s = {model.lam:.3g}. Use a larger s, or damping > 0."
        )
    return out
