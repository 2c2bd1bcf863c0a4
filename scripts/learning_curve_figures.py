"""Regenerate docs/img/learning-curves-{2,3,8}-seeds.png from real runs on digits.

Four strategies × eight seeds of a small softmax GLM on scikit-learn's digits (in-process, no
MLflow), then the comparison figure of the first 2, 3 and all 8 seeds. Run from the repository
root (about two minutes on two cores):

    OMP_NUM_THREADS=1 python scripts/learning_curve_figures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from alloop import ActiveLoop, LoopSettings, Pool
from alloop.compare.figures import plot_comparison
from alloop.models import SoftmaxGLM
from oracles import SimulatedOracle

STRATEGIES = ("random", "margin", "entropy", "least-confident")
OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def curves(seeds: int = 8) -> pd.DataFrame:
    X, y = load_digits(return_X_y=True)
    rows = []
    for seed in range(seeds):
        X_pool, X_test, y_pool, y_test = train_test_split(X / 16, y, test_size=0.3,
                                                          random_state=seed)
        for name in STRATEGIES:
            pool = Pool(X_pool)
            oracle = SimulatedOracle(dict(zip(pool.ids, y_pool)))
            settings = LoopSettings(initial=20, batch_size=10, rounds=12, seed=seed,
                                    progress=False)
            loop = ActiveLoop(pool, SoftmaxGLM(s=0.0), name, oracle, settings, X_test=X_test,
                              y_test=y_test, classes=range(10))
            curve = loop.run().curve
            rows.append(curve[["labels", "accuracy"]].assign(strategy=name, seed=seed))
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    data = curves()
    for n in (2, 3, 8):
        shown = data[data["seed"] < n]
        path = OUT / f"learning-curves-{n}-seeds.png"
        plot_comparison(shown, "accuracy", [path], order=list(STRATEGIES),
                        title=f"digits, softmax GLM: {n} seeds")
        print(f"wrote {path}")
    print(data.groupby(["strategy", "labels"])["accuracy"].mean().unstack(0).round(3).tail(3))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
