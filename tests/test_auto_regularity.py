"""Automatic regularity: V'(s) = g_V·θ̇ and select_regularity against refits of V(s).

The reference is the validation loss V(s) itself, computed from tightly converged refits at
each s (finite differences for V' and V'', a fine grid for argmin V); it never uses θ̇.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

from alloop.loop import LoopSettings
from alloop.models import LinearGLM, LogisticGLM, NotDifferentiableError, SoftmaxGLM
from alloop.regularity import (
    AutoRegularity,
    hypergradient,
    hypergradient_curvature,
    refit,
    select_regularity,
    validation_loss,
)

TIGHT = {"tol": 1e-13}  # Newton to a gradient norm of 1e-13 per point


def ridge_data(seed=0, n=25, nv=25, d=10):
    rng = np.random.default_rng(seed)
    w = 0.4 * rng.normal(size=d)
    X, Xv = rng.normal(size=(n, d)), rng.normal(size=(nv, d))
    return X, X @ w + rng.normal(size=n), Xv, Xv @ w + rng.normal(size=nv)


def logistic_data(seed=5, n=60, nv=40, d=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)

    def draw(m):
        X = rng.normal(size=(m, d))
        return X, (rng.random(m) < expit(X @ w + 0.3)).astype(int)

    return (*draw(n), *draw(nv))


def softmax_data(seed=2, n=60, nv=40, d=3, K=3):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, K))

    def draw(m):
        X = rng.normal(size=(m, d))
        return X, np.array([rng.choice(K, p=p) for p in softmax(X @ W, axis=1)])

    return (*draw(n), *draw(nv))


CASES = {
    "ridge": (lambda s: LinearGLM(s=s, sigma2=0.8, **TIGHT), ridge_data),
    "logistic": (lambda s: LogisticGLM(s=s, **TIGHT), logistic_data),
    "softmax": (lambda s: SoftmaxGLM(s=s, **TIGHT), softmax_data),
}


def brute_V(make, X, y, Xv, yv):
    """s ↦ V(s) from a tight fit at s (warm-started from the previous fit; no tangent)."""
    last = [make(0.0).fit(X, y)]

    def V(s):
        last[0] = last[0].with_s(s).fit(X, y)
        return validation_loss(last[0], Xv, yv)

    return V


@pytest.mark.parametrize("case", sorted(CASES))
def test_hypergradient_is_the_derivative_of_the_validation_loss(case):
    make, data = CASES[case]
    X, y, Xv, yv = data()
    V = brute_V(make, X, y, Xv, yv)
    h = 1e-4
    for s in (-2.0, 0.0, 1.5):
        model = make(s).fit(X, y)
        fd = (V(s + h) - V(s - h)) / (2 * h)
        assert hypergradient(model, Xv, yv) == pytest.approx(fd, rel=1e-6, abs=1e-9)
        assert hypergradient(model, Xv, yv, tangent_method="cg") == pytest.approx(
            fd, rel=1e-6, abs=1e-9
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_curvature_is_the_second_derivative_of_the_validation_loss(case):
    make, data = CASES[case]
    X, y, Xv, yv = data()
    V = brute_V(make, X, y, Xv, yv)
    s, h = 0.5, 1e-3
    second = (V(s + h) - 2 * V(s) + V(s - h)) / h**2
    curvature = hypergradient_curvature(make(s).fit(X, y), Xv, yv)
    assert curvature == pytest.approx(second, rel=1e-4, abs=1e-6 * abs(V(s)))


def _grid_argmin(V, lo, hi, steps=(0.25, 0.01, 5e-4)):
    """argmin of V on a grid refined around the best point: spacing 0.25, then 0.01, 5e-4."""
    best = None
    for k, step in enumerate(steps):
        if k == 0:
            grid = np.arange(lo, hi + step / 2, step)
        else:
            wide = steps[k - 1]
            grid = np.arange(best - wide, best + wide + step / 2, step)
        values = [V(s) for s in grid]
        best = grid[int(np.argmin(values))]
    return best, min(values)


@pytest.mark.parametrize("case", sorted(CASES))
def test_selected_s_matches_a_fine_grid_search(case):
    make, data = CASES[case]
    X, y, Xv, yv = data()
    s_star, model, info = select_regularity(make(0.0), X, y, Xv, yv, bounds=(-5.0, 5.0))
    s_grid, v_grid = _grid_argmin(brute_V(make, X, y, Xv, yv), -5.0, 5.0)
    assert abs(s_star - s_grid) <= 1e-3
    assert info.value <= v_grid + 1e-9 * abs(v_grid)
    assert info.converged and not info.at_bound
    assert model.s == s_star == info.s
    assert info.iterations == len(info.history) <= 20
    assert abs(info.gradient) < 1e-3 * abs(info.value)
    # The returned model is the fit at s*.
    assert validation_loss(model, Xv, yv) == pytest.approx(info.value, rel=1e-12)


def test_warm_start_near_the_answer_needs_few_fits():
    make, data = CASES["logistic"]
    X, y, Xv, yv = data()
    s_star, model, cold = select_regularity(make(0.0), X, y, Xv, yv, s0=-5.0)
    s_again, _, warm = select_regularity(model, X, y, Xv, yv, s0=s_star + 0.05)
    assert s_again == pytest.approx(s_star, abs=1e-3)
    assert warm.iterations < cold.iterations
    assert warm.iterations <= 5


def test_monotone_validation_loss_stops_at_the_bound():
    # Validating on the training set: less regularization always fits it better.
    X, y, _, _ = ridge_data()
    s_star, model, info = select_regularity(LinearGLM(s=0.0), X, y, X, y, bounds=(-4.0, 4.0))
    assert s_star == -4.0 and info.at_bound and info.converged
    assert info.gradient > 0
    assert model.s == -4.0


def test_refit_changes_only_s():
    X, y, _, _ = logistic_data()
    model = LogisticGLM(s=0.0).fit(X, y)
    other = refit(model, 1.0)
    assert other.s == 1.0 and model.s == 0.0
    expected = LogisticGLM(s=1.0).fit(X, y).theta_
    assert np.allclose(other.theta_.numpy(), expected.numpy(), atol=1e-8)


def test_selection_info_is_loggable():
    X, y, Xv, yv = ridge_data()
    _, _, info = select_regularity(LinearGLM(), X, y, Xv, yv)
    row = info.as_dict()
    assert set(row) == {
        "s_star",
        "lambda_star",
        "validation_loss",
        "hypergradient",
        "iterations",
        "at_bound",
        "converged",
    }
    assert row["lambda_star"] == pytest.approx(np.exp(info.s))


def test_iteration_budget_warns():
    X, y, Xv, yv = ridge_data()
    with pytest.warns(RuntimeWarning, match="max_iter"):
        _, _, info = select_regularity(LinearGLM(), X, y, Xv, yv, s0=-8.0, max_iter=2)
    assert not info.converged and info.iterations == 2


def test_bad_input_is_named():
    X, y, Xv, yv = ridge_data()
    with pytest.raises(ValueError, match="bounds"):
        select_regularity(LinearGLM(), X, y, Xv, yv, bounds=(3.0, -3.0))
    with pytest.raises(ValueError, match="s0"):
        select_regularity(LinearGLM(), X, y, Xv, yv, s0=float("nan"))
    with pytest.raises(ValueError, match="validation"):
        select_regularity(LinearGLM(), X, y, None, None)
    with pytest.raises(ValueError, match="rows"):
        select_regularity(LinearGLM(), X, y, Xv, yv[:-1])
    from sklearn.linear_model import Ridge

    with pytest.raises(NotDifferentiableError, match="Ridge"):
        select_regularity(Ridge(), X, y, Xv, yv)
    with pytest.raises(NotDifferentiableError):
        hypergradient(Ridge().fit(X, y), Xv, yv)


def test_loop_hook_chooses_s_star_every_round_from_the_last_one():
    """In ActiveLoop, each round's logged s is argmin V on that round's labels (fine grid)."""
    from alloop import ActiveLoop, Pool
    from oracles import SimulatedOracle

    make, _ = CASES["ridge"]
    X, y, Xv, yv = ridge_data(seed=3, n=40, nv=30, d=6)
    pool = Pool(X)
    starts, selections = [], []

    class Recording(AutoRegularity):
        def __call__(self, model, X, y, X_val, y_val, s0=None, **kw):
            starts.append(s0)
            return super().__call__(model, X, y, X_val, y_val, s0=s0, **kw)

    hook = Recording(bounds=(-5.0, 5.0), on_select=selections.append)
    loop = ActiveLoop(
        pool,
        make(0.0),
        "random",
        SimulatedOracle(dict(zip(pool.ids, y, strict=True))),
        settings=LoopSettings(initial=12, batch_size=6, rounds=2, progress=False),
        X_val=Xv,
        y_val=yv,
        regularity=hook,
    )
    result = loop.run()
    assert len(selections) == 3
    assert starts == [0.0, *(info.s for info in selections[:-1])]  # warm start: last round's s*
    X_l, y_l = result.pool.labeled_data()
    s_grid, _ = _grid_argmin(brute_V(make, X_l, y_l, Xv, yv), -5.0, 5.0)
    assert abs(result.curve["s"].iloc[-1] - s_grid) <= 1e-3
    assert result.model.s == result.curve["s"].iloc[-1]


def test_default_loop_hook_is_select_regularity():
    from alloop.regularity import loop_hook

    make, data = CASES["logistic"]
    X, y, Xv, yv = data()
    model, s = loop_hook(make(0.0), X, y, Xv, yv, s0=1.0, classes=[0, 1])
    s_ref, _, _ = select_regularity(make(0.0), X, y, Xv, yv, s0=1.0)
    assert s == s_ref == model.s
    assert model.classes_.tolist() == [0, 1]
