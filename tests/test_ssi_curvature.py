"""SSI's V''(s) without refits, against refits: the former central difference and scipy fits.

``curvature_method="exact"`` (the default) computes V''(s) from θ̇, u, H_Vθ̇, ∇²C u and the
third-order gradient that SSI already has. The references here never use that code: a
Richardson-extrapolated central difference of V' over warm-started refits (the former
default, ``curvature_method="difference"``), and a second difference of V over independent
scipy refits (tests/test_regularity_heuristics.py's ``Brute``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_regularity_heuristics import PROBLEMS, fitted, relerr

from alloop.regularity import hypergradient_curvature, ssi_directions, ssi_scores


def _richardson(model, Xv, yv, h=2e-3):
    """V'' from central differences of V' (refits) at h and h/2: O(h⁴) error."""
    coarse = hypergradient_curvature(model, Xv, yv, step=h)
    fine = hypergradient_curvature(model, Xv, yv, step=h / 2)
    return (4 * fine - coarse) / 3


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
@pytest.mark.parametrize("s", [-1.0, 0.5])
def test_exact_curvature_matches_refits(lik, s):
    brute, Xc, _ = PROBLEMS[lik]()
    model = fitted(brute, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # V'' may be below the floor
        dirs = ssi_directions(model, brute.Xv, brute.yv, bounds=None)
    reference = _richardson(model, brute.Xv, brute.yv)
    assert abs(dirs.raw_curvature - reference) <= 1e-7 * max(1.0, abs(reference))
    # Independent scipy refits: second difference of V itself (fit tolerance limits it).
    h = 1e-2
    second = (brute.V(s + h) - 2 * brute.V(s) + brute.V(s - h)) / h**2
    assert abs(dirs.raw_curvature - second) <= 1e-3 * max(1.0, abs(second))


def test_mlp_exact_curvature_matches_refits():
    from alloop.models.mlp import MLP

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 3, size=50)
    Xv, yv = rng.normal(size=(30, 3)), rng.integers(0, 3, size=30)
    model = MLP(hidden=(5,), activation="tanh", s=-1.0, optimizer="lbfgs").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dirs = ssi_directions(model, Xv, yv, bounds=None)
    # L-BFGS refits stop at a gradient norm near 1e-7, which puts ~1e-5 of noise on a
    # difference quotient over 2h = 0.02; the exact value must sit inside it.
    reference = _richardson(model, Xv, yv, h=1e-2)
    assert abs(dirs.raw_curvature - reference) <= 5e-5 * max(1.0, abs(reference))


def test_scores_differ_from_the_difference_path_only_through_curvature():
    brute, Xc, _ = PROBLEMS["bernoulli"]()
    model = fitted(brute, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exact = ssi_directions(model, brute.Xv, brute.yv, bounds=None)
        diff = ssi_directions(
            model, brute.Xv, brute.yv, bounds=None, curvature_method="difference"
        )
    for a, b in [(exact.d, diff.d), (exact.u, diff.u), (exact.tangent, diff.tangent)]:
        assert relerr(a.numpy(), b.numpy()) < 1e-12
    scaled = ssi_scores(model, Xc, directions=exact) * exact.curvature**2
    assert relerr(scaled, ssi_scores(model, Xc, directions=diff) * diff.curvature**2) < 1e-12


def test_bad_curvature_method_names_the_choices():
    brute, _, _ = PROBLEMS["gaussian"]()
    with pytest.raises(ValueError, match="'exact' or 'difference'"):
        ssi_directions(fitted(brute, 0.0), brute.Xv, brute.yv, curvature_method="fd")
