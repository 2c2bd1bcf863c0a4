"""SLD and STI scores on the default path equal those from an autograd Hessian (float64).

The softmax loss Hessian is built by BLAS syrk (one triangle); the reference here is the
Hessian of the training objective by ``torch.func.hessian``, with θ̇ and q solved densely
(the formulas as they were before, with no shared code path), to 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import strategies
from alloop.models import LogisticGLM, SoftmaxGLM


def _problem(make, seed=4, n=300, d=7, k=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=(d, k))).argmax(1)
    return make(s=-0.5).fit(X, y if make is SoftmaxGLM else (y > 1).astype(int)), rng


def _reference_directions(model):
    theta = model.theta_.detach()
    H = torch.func.hessian(lambda t: model.objective(t, model.X_train_, model.y_train_))(theta)
    N = model.null_space()
    if N is not None:
        H = H + N @ N.T
    rho = model.lam * torch.func.grad(model.complexity)(theta)
    tangent = -torch.linalg.solve(H, rho)
    q = torch.linalg.solve(H, tangent / tangent.norm())
    if N is not None:
        tangent, q = tangent - N @ (N.T @ tangent), q - N @ (N.T @ q)
    return tangent, q


@pytest.mark.parametrize("make", [SoftmaxGLM, LogisticGLM])
def test_sld_and_sti_scores_match_an_autograd_hessian(make):
    from alloop.regularity import sld_scores

    model, rng = _problem(make)
    X_pool = rng.normal(size=(200, 7))
    tangent, q = _reference_directions(model)
    sld_ref = sld_scores(model, X_pool, tangent=tangent)
    sti_ref = sld_scores(model, X_pool, tangent=q)  # (q·g)² has SLD's closed form along q
    sld = strategies.get("sld").score(model, X_pool)
    sti = strategies.get("sti").score(model, X_pool)
    assert np.max(np.abs(sld - sld_ref)) <= 1e-10 * np.max(np.abs(sld_ref))
    assert np.max(np.abs(sti - sti_ref)) <= 1e-10 * np.max(np.abs(sti_ref))
