"""The softmax GLM's Newton-CG fit against the dense-Newton path it replaced, and brute force.

The reference is the pre-rewrite dense Newton (``solver="newton"``: closed-form Hessian,
Cholesky per step) run to the numerical optimum (``tol=1e-13``): at its old default ``tol``
that path stops up to ~4e-10 from θ* on digits-sized problems, so comparing the new default
against the old default would measure the old path's own slack, not the rewrite.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import strategies
from alloop.models import LogisticGLM, SoftmaxGLM
from alloop.models.glm import NEWTON_CG_MIN_PARAMS


def _data(n: int, d: int = 30, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = 2.0 * rng.standard_normal((k, d))
    y = np.arange(n) % k
    return means[y] + rng.standard_normal((n, d)), y


def _reference(X, y, k, s=0.0):
    return SoftmaxGLM(s=s, solver="newton", tol=1e-13).fit(X, y, classes=range(k))


@pytest.mark.parametrize("n, s", [(30, 0.0), (120, -2.0), (400, 1.0)])
def test_newton_cg_reaches_the_stationary_point(n, s):
    """∇F(θ*) by autograd (not the fit's own closed form) vanishes, and θ* is the dense one."""
    X, y = _data(n)
    model = SoftmaxGLM(s=s).fit(X, y, classes=range(5))
    assert model.theta_.numel() >= NEWTON_CG_MIN_PARAMS  # the default path is Newton-CG here
    grad = torch.func.grad(lambda t: model.objective(t, model.X_train_, model.y_train_))(model.theta_)
    Q = model.null_space()
    grad = grad - Q @ (Q.T @ grad)
    assert float(grad.norm()) < 1e-9
    ref = _reference(X, y, 5, s)
    torch.testing.assert_close(model.theta_, ref.theta_, rtol=0, atol=1e-10)


def test_solver_name_is_checked():
    with pytest.raises(ValueError, match="unknown GLM solver 'cholesky'"):
        SoftmaxGLM(solver="cholesky")


def _context(seed: int):
    Xl, yl = _data(60, seed=seed)
    Xv, yv = _data(40, seed=seed + 1)
    Xp, _ = _data(300, seed=seed + 2)
    return Xl, yl, Xv, yv, Xp


@pytest.mark.parametrize("name", sorted(strategies.available()))
def test_every_strategy_scores_as_before(name):
    """Each classification strategy's scores on the default fit equal the dense-Newton ones."""
    strategy = strategies.get(name)
    if "regression" in strategy.needs:
        pytest.skip(f"{name} is a regression strategy; the softmax fit is what changed")
    Xl, yl, Xv, yv, Xp = _context(3)
    new = SoftmaxGLM(s=0.0).fit(Xl, yl, classes=range(5))
    old = _reference(Xl, yl, 5)
    ctx = dict(X_labeled=Xl, y_labeled=yl, X_val=Xv, y_val=yv)
    # a stateful strategy (the portfolio) gets one fresh instance per model
    sa, sb = (strategy.fresh(strategy.check_options({})) if strategy.fresh is not None
              else strategy for _ in range(2))
    a = sa.score(new, Xp, rng=np.random.default_rng(0), **ctx)
    b = sb.score(old, Xp, rng=np.random.default_rng(0), **ctx)
    scale = max(1.0, float(np.abs(b).max()))
    # SSI's V''(s) is a central difference of V' over two refits at s ± 1e-3: it turns θ*'s
    # rounding (~1e-15) into ~1e-9 of the score, the spread between dense-Newton references at
    # tol 1e-13 and 1e-15 themselves (9e-10); the old default tol=1e-10 was 7e-9 off.
    rel = 2e-9 if name == "ssi" else 1e-10
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


@pytest.mark.parametrize(
    "make, d, k",
    [(lambda: LogisticGLM(s=0.0), 6, 2), (lambda: SoftmaxGLM(s=-1.0), 6, 4),
     (lambda: SoftmaxGLM(s=-1.0), 30, 5)],
    ids=["binary-dense", "softmax-dense", "softmax-cg"],
)
def test_warm_start_reaches_the_cold_optimum(make, d, k):
    """The loop refits from last round's θ* (``with_s``); that must not move θ* beyond 1e-10."""
    X, y = _data(200, d=d, k=k, seed=4)
    first = make().fit(X[:120], y[:120], classes=range(k))
    warm = first.with_s(first.s).fit(X, y, classes=range(k))
    cold = make().fit(X, y, classes=range(k))
    torch.testing.assert_close(warm.theta_, cold.theta_, rtol=0, atol=1e-10)
