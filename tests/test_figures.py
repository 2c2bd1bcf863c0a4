"""The comparison figure: bands only from three seeds, named, inside the data; integer label
ticks; 16 strategies told apart; `alloop run` leaves its own PNG."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from alloop.compare.figures import comparison_figure


def long_curves(strategies, seeds, labels=(10, 15, 20, 25), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s_i, name in enumerate(strategies):
        for sd in range(seeds):
            for j, n in enumerate(labels):
                value = min(1.0, 0.5 + 0.1 * j + 0.01 * s_i + rng.normal(0, 0.05))
                rows.append({"strategy": name, "seed": sd, "labels": n, "accuracy": value})
    return pd.DataFrame(rows)


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_two_seeds_draw_no_band_and_say_so():
    fig = comparison_figure(long_curves(["random", "margin"], 2), "accuracy")
    ax = fig.axes[0]
    assert bands(ax) == []
    assert "no band" in ax.get_legend().get_title().get_text()


@pytest.mark.parametrize("band, name", [("t", "95% t-interval"), ("sd", "± 1 s.d.")])
def test_three_seeds_draw_a_named_band_inside_the_data(band, name):
    curves = long_curves(["random", "margin"], 3)
    fig = comparison_figure(curves, "accuracy", band=band)
    ax = fig.axes[0]
    assert len(bands(ax)) == 2
    assert name in ax.get_legend().get_title().get_text()
    lo, hi = curves["accuracy"].min(), curves["accuracy"].max()
    for poly in bands(ax):
        ys = np.concatenate([p.vertices[:, 1] for p in poly.get_paths()])
        assert ys.min() >= lo - 1e-12 and ys.max() <= hi + 1e-12
    ymin, ymax = ax.get_ylim()
    assert ymin >= lo - 0.05 * (hi - lo) and ymax <= hi + 0.05 * (hi - lo)


def test_label_ticks_are_whole_numbers():
    fig = comparison_figure(long_curves(["margin"], 3), "accuracy")
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_sixteen_strategies_get_sixteen_looks():
    import strategies

    names = ["random", *[n for n in strategies.available() if n != "random"]]
    names += [f"custom-{i}" for i in range(max(0, 16 - len(names)))]
    fig = comparison_figure(long_curves(names[:16], 1), "accuracy", order=names[:16])
    lines = [ln for ln in fig.axes[0].get_lines()]
    looks = {(ln.get_color(), ln.get_linestyle()) for ln in lines}
    assert len(lines) == 16 and len(looks) == 16
    by_name = {ln.get_label().split(" (")[0]: ln for ln in lines}
    for a, b in [("ssi", "sti"), ("entropy", "vote-entropy")]:
        if a in by_name and b in by_name:
            assert by_name[a].get_color() != by_name[b].get_color()


def test_alloop_run_writes_its_learning_curve_png(tmp_path):
    import subprocess
    import sys

    import yaml

    config = {"name": "png", "data": {"source": "sklearn:iris"}, "strategy": {"name": "margin"},
              "loop": {"initial": 6, "batch_size": 3, "rounds": 2},
              "store": {"path": str(tmp_path / "labels.sqlite")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run([sys.executable, "-m", "alloop", "run", "c.yaml", "--no-progress",
                           "--tracking-uri", uri],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "reports" / "png" / "margin-seed0-learning-curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learning curve: reports/png/margin-seed0-learning-curve.png" in proc.stdout
    # the hint names the store this run used
    assert f"alloop ui --tracking-uri {uri}" in proc.stdout
