"""Relabel queries: FVM-flagged labels go back to the oracle; the store keeps both answers."""

import numpy as np
from sklearn.datasets import load_digits

from alloop import ActiveLoop, LabelStore, Pool
from alloop.loop import LoopSettings
from alloop.models import SoftmaxGLM
from oracles import SimulatedOracle


def test_relabel_queries_fix_noisy_labels_and_keep_history(tmp_path):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    pool_X, pool_y = X[:400], y[:400]
    truth = {str(i): int(v) for i, v in enumerate(pool_y)}
    store = LabelStore(tmp_path / "s.sqlite")
    oracle = SimulatedOracle(truth, noise=0.3, classes=list(range(10)), seed=1)
    loop = ActiveLoop(
        Pool(pool_X),
        SoftmaxGLM(s=1.0),
        "random",
        oracle,
        settings=LoopSettings(
            initial=80, batch_size=10, rounds=4, relabel={"every": 1, "count": 8}, progress=False
        ),
        X_val=X[400:600],
        y_val=y[400:600],
        X_test=X[600:900],
        y_test=y[600:900],
        classes=range(10),
        store=store,
    )
    result = loop.run()
    assert result.curve["relabeled"].iloc[1:].tolist() == [8, 8, 8, 8]

    answers = store.answers()
    first = {}
    for a in answers:
        first.setdefault(a.item_id, a)
    relabeled = [a for a in answers if a is not first[a.item_id]]
    assert len(relabeled) == 32
    # history kept: every relabeled item still has its first (possibly wrong) answer in the log
    assert all(first[a.item_id].round < a.round for a in relabeled)
    # FVM flags corrupted labels far above the 30% base rate
    flagged_wrong = np.mean([first[a.item_id].label != truth[a.item_id] for a in relabeled])
    assert flagged_wrong > 0.6
    # and the answers (a careful second look) replace them in the current labels
    current = store.current_labels()
    assert all(current[a.item_id] == truth[a.item_id] for a in relabeled)
