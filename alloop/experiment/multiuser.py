"""A multi-user config as the ordinary loop: (user, item) pairs, the hierarchical model, hooks.

``alloop run CONFIG`` with ``data.user_column`` / ``data.item_column`` and
``model.kind: hierarchical`` comes here (from :func:`alloop.experiment.build_loop`):

* the rows of ``data.source`` are (user, item) pairs; the user and item columns name them
  (ids ``"<user>/<item>"``) and are not features; the split is the usual seeded test /
  validation split of rows, and the training rows are the :class:`~alloop.multiuser.PairPool`;
* the model is :class:`~alloop.multiuser.HierarchicalGLM` over every user of the data set
  (``model.params``: ``s0``, ``s1``, ``sigma2``, ``tol``, ``max_iter``, ``hyperparameters``
  — the entries of s that sld/sti/ssi score — and ``bounds``, the (s_0, s_1) search box); its likelihood follows the task;
* (s_0, s_1) are chosen each round on the validation split
  (:class:`~alloop.multiuser.HierarchicalRegularity`) unless ``model.auto_regularity: false``;
* each round logs the per-user table ``users.csv`` and its aggregates
  (:class:`~alloop.multiuser.UserReport`); ``data.user_quota`` caps the queries per user and
  round (:class:`~alloop.multiuser.UserQuota`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alloop.multiuser.loop_hooks import HierarchicalRegularity, UserReport
from alloop.multiuser.model import HierarchicalGLM
from alloop.multiuser.pool import PairPool, UserQuota, pair_rows

__all__ = ["build_multiuser_loop", "prepare_pairs"]

#: model.params a hierarchical model takes (``bounds`` goes to the (s_0, s_1) search)
PARAMS = ("s0", "s1", "sigma2", "tol", "max_iter", "hyperparameters", "bounds")


def _name(value: Any) -> str:
    """A user or item value as an id part: 17.0 → "17"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def prepare_pairs(config: Any) -> tuple[Any, dict[str, Any]]:
    """(the :class:`alloop.experiment.Prepared` data with a pair pool, the user split).

    The second item holds ``users`` (every user's name) and ``n_users``.
    """
    from alloop.data.loaders import load_dataset
    from alloop.data.splits import split_dataset
    from alloop.experiment import Prepared, _standardize

    d = config.data
    user_col, item_col = d.user_column, d.item_column
    if d.text_column:
        raise ValueError("multi-user data takes numeric item features; drop data.text_column")
    features = None if d.features is None else [
        *(f for f in d.features if f not in (user_col, item_col)), user_col, item_col
    ]
    ds = load_dataset(
        d.source, target=d.target, task=d.task, id_column=d.id_column, features=features,
        categorical=d.categorical,
    )
    names = list(ds.feature_names or ())
    if user_col not in names or item_col not in names:
        raise ValueError(
            f"data.user_column {user_col!r} and data.item_column {item_col!r} must be columns "
            f"of {d.source}; its columns: {', '.join(names)}"
        )
    keep_rows = np.arange(len(ds.y))
    if d.max_items is not None and d.max_items < len(ds.y):
        rng = np.random.default_rng(config.seed)
        keep_rows = np.sort(rng.permutation(len(ds.y))[: d.max_items])
    user_values = [_name(r[user_col]) for r in ds.raw]
    item_values = [_name(r[item_col]) for r in ds.raw]
    user_names = sorted(set(user_values[i] for i in keep_rows))
    index = {u: i for i, u in enumerate(user_names)}
    # user and item are who and what, not features (nor their one-hot columns)
    columns = [j for j, n in enumerate(names)
               if n not in (user_col, item_col) and not n.startswith((f"{user_col}=", f"{item_col}="))]
    if not columns:
        raise ValueError(f"{d.source} has no item features besides {user_col} and {item_col}")
    ds = type(ds)(
        X=pair_rows(ds.X[:, columns] if not hasattr(ds.X, "toarray") else
                    ds.X[:, columns].toarray(),
                    np.array([index.get(u, 0) for u in user_values])),
        y=ds.y,
        ids=np.array([f"{u}/{i}" for u, i in zip(user_values, item_values, strict=True)],
                     dtype=object),
        raw=ds.raw, feature_names=("user", *(names[j] for j in columns)), task=ds.task,
        classes=ds.classes, name=ds.name,
    )
    ds = ds.subset(keep_rows)
    seen: dict[str, int] = {}
    for position, pair in enumerate(ds.ids.tolist()):
        if pair in seen:
            raise ValueError(
                f"({user_col}, {item_col}) pair {pair!r} occurs twice (rows {seen[pair]} and "
                f"{position}): a pair is one candidate; aggregate or drop duplicate ratings first"
            )
        seen[pair] = position
    splits = split_dataset(ds, test=d.test_size, validation=d.validation_size, seed=config.seed)
    train, val, test = splits.train, splits.validation, splits.test

    def features_of(X: np.ndarray) -> np.ndarray:
        return X[:, 1:]

    X_tr, X_te = features_of(train.X), features_of(test.X)
    X_va = None if val is None else features_of(val.X)
    if d.standardize:
        X_tr, X_te, X_va = _standardize(X_tr, X_te, X_va)
    users_tr = train.X[:, 0].astype(np.int64)
    pool = PairPool(
        X_tr, users_tr, [pair.split("/", 1)[1] for pair in train.ids.tolist()], user_names,
        raw=train.raw,
    )
    prepared = Prepared(
        pool=pool,
        truth=dict(zip(pool.ids.tolist(), train.y.tolist(), strict=True)),
        X_test=pair_rows(X_te, test.X[:, 0].astype(np.int64)),
        y_test=test.y,
        X_val=None if val is None else pair_rows(X_va, val.X[:, 0].astype(np.int64)),
        y_val=None if val is None else val.y,
        classes=None if ds.classes is None else ds.classes.tolist(),
        task=ds.task,
    )
    return prepared, {"users": user_names, "n_users": len(user_names)}


def build_model(config: Any, task: str, classes: Any, n_users: int) -> HierarchicalGLM:
    """The hierarchical model ``model.params`` describe; unknown params name the valid ones."""
    params = dict(config.model.params)
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(
            f"model.params {unknown} do not fit model.kind 'hierarchical'; valid params: "
            f"{', '.join(PARAMS)}"
        )
    params.pop("bounds", None)
    if task == "regression":
        likelihood = "gaussian"
    else:
        likelihood = "bernoulli" if len(classes) == 2 else "categorical"
    return HierarchicalGLM(likelihood, n_users=n_users, **params)


def build_multiuser_loop(
    config: Any, *, tracking_uri: str | None = None, progress: bool = True, track: bool = True
) -> Any:
    """The :class:`~alloop.loop.ActiveLoop` of a multi-user config (what ``alloop run`` runs)."""
    from alloop.experiment import build_oracle, loop_settings
    from alloop.loop import ActiveLoop
    from alloop.store import open_store

    data, users = prepare_pairs(config)
    model = build_model(config, data.task, data.classes, users["n_users"])
    bounds = config.model.params.get("bounds", ((-10.0, 10.0), (-10.0, 10.0)))
    regularity = None
    if config.model.auto_regularity is not False:
        regularity = HierarchicalRegularity(bounds=tuple(tuple(b) for b in bounds))
    report = UserReport(data.X_test, data.y_test, data.X_val, data.y_val, regularity=regularity)
    lp = config.loop
    if not isinstance(lp.initial, int):
        raise ValueError("multi-user loop.initial is a number of random pairs; got a strategy")
    store = open_store(config.store.url or config.store_path())
    try:
        store.take_lease()
        tracker = None
        if track:
            from alloop.tracking import MlflowTracker

            tracker = MlflowTracker(config.tracking.experiment or config.name,
                                    tracking_uri or config.tracking.uri)
        quota = config.data.user_quota
        return ActiveLoop(
            data.pool, model, config.strategy.name, build_oracle(config, data, config.seed),
            loop_settings(config, progress),
            X_test=data.X_test, y_test=data.y_test, X_val=data.X_val, y_val=data.y_val,
            classes=data.classes,
            batch_rule=UserQuota(quota) if quota is not None else config.strategy.batch,
            strategy_params=config.strategy.params, regularity=regularity,
            round_report=report, store=store, tracker=tracker,
            run_name=f"{config.strategy.name}-seed{config.seed}",
            params=config.model_dump(mode="json"),
        )
    except BaseException:
        store.close()
        raise
