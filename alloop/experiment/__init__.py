"""Build a loop from a validated config and run it: what ``alloop run`` does."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.config import ExperimentConfig, PeopleBase, SklearnConfig
from alloop.data.pool import Pool
from alloop.loop import (
    ActiveLoop,
    InitialSet,
    LoopResult,
    LoopSettings,
    Relabel,
    Stabilize,
    Target,
)
from alloop.store import open_store


@dataclass
class Prepared:
    """The pieces a config describes, ready for :class:`ActiveLoop`."""

    pool: Pool
    truth: dict[str, Any]
    X_test: Any
    y_test: np.ndarray
    X_val: Any
    y_val: Any
    classes: list[Any] | None
    task: str


def _standardize(train: Any, *others: Any) -> list[Any]:
    if hasattr(train, "toarray"):  # sparse: keep sparsity, scale by max |x|
        from sklearn.preprocessing import MaxAbsScaler

        scaler = MaxAbsScaler().fit(train)
    else:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(train)
    return [scaler.transform(x) if x is not None else None for x in (train, *others)]


def prepare_data(config: ExperimentConfig) -> Prepared:
    """Load, split and scale the data set; the training split becomes the pool."""
    from alloop.data.loaders import load_dataset
    from alloop.data.splits import split_dataset

    d = config.data
    ds = load_dataset(
        d.source, target=d.target, task=d.task, text_column=d.text_column,
        vectorizer=d.vectorizer, id_column=d.id_column, features=d.features,
        categorical=d.categorical,
    )
    if d.max_items is not None and d.max_items < len(ds.y):
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(ds.y))[: d.max_items])
        ds = ds.subset(keep)
    splits = split_dataset(ds, test=d.test_size, validation=d.validation_size, seed=config.seed)
    train, val, test = splits.train, splits.validation, splits.test
    X_tr, X_te, X_va = train.X, test.X, None if val is None else val.X
    if d.text_column:
        # Refit the vectoriser on the pool's texts alone: no vocabulary or IDF from test items.
        from alloop.data.text import build_vectorizer

        vectorizer = build_vectorizer(d.vectorizer)
        X_tr = vectorizer.fit_transform(list(train.raw))
        X_te = vectorizer.transform(list(test.raw))
        X_va = None if val is None else vectorizer.transform(list(val.raw))
        try:
            feature_names = [str(v) for v in vectorizer.get_feature_names_out()]
        except (AttributeError, ValueError):  # e.g. HashingVectorizer has no vocabulary
            feature_names = None
    else:
        feature_names = train.feature_names
    if d.standardize:
        X_tr, X_te, X_va = _standardize(X_tr, X_te, X_va)
    pool = Pool(X_tr, ids=train.ids, raw=train.raw, feature_names=feature_names)
    return Prepared(
        pool=pool,
        truth=dict(zip(pool.ids.tolist(), train.y.tolist(), strict=True)),
        X_test=X_te,
        y_test=test.y,
        X_val=X_va,
        y_val=None if val is None else val.y,
        classes=None if ds.classes is None else ds.classes.tolist(),
        task=ds.task,
    )


def build_model(config: ExperimentConfig, task: str, n_classes: int | None) -> Any:
    """The model template a config asks for; a bad ``model.params`` names the valid ones."""
    try:
        return _build_model(config, task, n_classes)
    except TypeError as exc:  # an unknown or ill-typed constructor argument
        raise ValueError(
            f"model.params {config.model.params!r} do not fit model.kind {config.model.kind!r}"
            f" ({exc}); valid params: {', '.join(_model_params(config)) or '(none)'}. "
            "Fix or remove them in the config's model.params"
        ) from None


def _model_params(config: ExperimentConfig) -> list[str]:
    """The constructor arguments ``model.params`` may set, for the error message."""
    m = config.model
    if isinstance(m, SklearnConfig):
        module, _, name = (m.estimator or "").rpartition(".")
        try:  # scikit-learn's declared parameter list
            return sorted(getattr(importlib.import_module(module), name)().get_params())
        except Exception:  # noqa: BLE001 - only for a message
            return []
    return sorted(m.PARAMS)  # declared by the model's config class


def _build_model(config: ExperimentConfig, task: str, n_classes: int | None) -> Any:
    m = config.model
    if isinstance(m, SklearnConfig):
        return _build_sklearn(m, config.seed)
    s = m.log_lambda()
    where = {"device": m.device, "dtype": m.dtype}  # dtype None: float64 on CPU, float32 on GPU
    if m.kind == "logistic":
        if task != "classification":
            raise ValueError("model.kind 'logistic' needs a classification task; use 'linear'")
        from alloop.models import LogisticGLM, SoftmaxGLM

        return (LogisticGLM if n_classes == 2 else SoftmaxGLM)(s=s, **where, **m.params)
    if m.kind == "linear":
        if task != "regression":
            raise ValueError("model.kind 'linear' is for regression; use 'logistic'")
        from alloop.models import LinearGLM

        return LinearGLM(s=s, **where, **m.params)  # σ² estimated jointly with θ, as in Python
    if m.kind == "mlp":
        from alloop.models.mlp import MLP

        likelihood = (
            "gaussian" if task == "regression" else "bernoulli" if n_classes == 2 else "categorical"
        )
        return MLP(
            hidden=tuple(m.hidden), likelihood=likelihood, s=s, epochs=m.epochs, lr=m.lr,
            batch_size=m.batch_size, optimizer=m.optimizer, seed=config.seed, **where, **m.params,
        )
    raise AssertionError(f"model.kind {m.kind!r} has no builder")  # the config allows no other


def _build_sklearn(m: SklearnConfig, seed: int) -> Any:
    if not m.estimator.startswith("sklearn."):
        raise ValueError(
            f"model.estimator {m.estimator!r}: only scikit-learn classes (sklearn.*) can be "
            "named in a config; build other models in Python"
        )
    module, _, name = m.estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(f"model.estimator {m.estimator!r} does not exist") from None
    from alloop.models.sklearn_adapter import SklearnModel

    params = dict(m.params)
    estimator = cls(**params)
    if "random_state" in estimator.get_params() and "random_state" not in params:
        estimator.set_params(random_state=seed)  # reproducible, and resumable
    return SklearnModel(estimator)


def automatic_regularity(
    model: Any, X: Any, y: Any, X_val: Any, y_val: Any, s0: float | None = None, **fit_kwargs: Any
) -> tuple[Any, float]:
    """The loop's regularity hook: s* minimising validation loss, warm-started from ``s0``."""
    from alloop.regularity import select_regularity

    # dense Cholesky up to a few thousand parameters; CG beyond (bag-of-words models)
    classes = fit_kwargs.get("classes")
    outputs = len(classes) if classes is not None and len(classes) > 2 else 1
    method = "exact" if (X.shape[1] + 1) * outputs <= 4096 else "cg"
    s_star, fitted, _ = select_regularity(
        model, X, y, X_val, y_val, s0=s0, tangent_method=method, **fit_kwargs
    )
    return fitted, float(s_star)


def build_oracle(config: ExperimentConfig, data: Prepared, seed: int) -> Any:
    """The oracle a config asks for: simulated, terminal, files, or several annotators."""
    from oracles import SimulatedOracle
    from oracles.annotators import MultiAnnotatorOracle

    o = config.oracle
    if isinstance(o, PeopleBase):
        people = {"task": data.task, "classes": data.classes,
                  "feature_names": data.pool.feature_names, "show_prediction": o.show_prediction,
                  "show_score": o.show_score, "min_share": o.min_share, "timeout": o.timeout}
    if o.kind == "terminal":
        from oracles.terminal import TerminalOracle

        return TerminalOracle(annotator=o.annotator or "terminal", image_dir=o.image_dir, **people)
    if o.kind == "web":
        from oracles.web import WebOracle

        return WebOracle(list(o.annotators), tokens=config.tokens_path(), host=o.host, port=o.port, k=o.k,
                         policy=o.policy, seed=seed, image_dir=o.image_dir, **people)
    if o.kind == "label-studio":
        from oracles.label_studio import LabelStudioOracle

        return LabelStudioOracle(url=o.url, token_env=o.token_env, project_id=o.project_id,
                                 title=o.title or config.name, poll_interval=o.poll_interval,
                                 **people)
    if o.kind == "files":
        from oracles.files import FileExchangeOracle

        return FileExchangeOracle(o.dir, o.format, annotator=o.annotator or "files",
                                  annotators=o.annotators or None, poll_interval=o.poll_interval, **people)

    def simulated(noise: float, name: str, offset: int) -> SimulatedOracle:
        return SimulatedOracle(data.truth, noise=noise, confusion=o.confusion, classes=data.classes,
                               cost=o.cost, seed=seed + offset, annotator=name)

    if not o.annotators:
        return simulated(o.noise, "simulated", 0)
    members = {a.id: simulated(a.noise, a.id, i + 1) for i, a in enumerate(o.annotators)}
    return MultiAnnotatorOracle(members, k=o.k, policy=o.policy, seed=seed)


def build_loop(
    config: ExperimentConfig,
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
    track: bool = True,
) -> ActiveLoop:
    """Everything ``alloop run`` builds before the first round."""
    import strategies

    if config.data.user_column is not None:  # multi-user: (user, item) pairs, hierarchical model
        from alloop.experiment.multiuser import build_multiuser_loop

        return build_multiuser_loop(config, tracking_uri=tracking_uri, progress=progress, track=track)

    data = prepare_data(config)
    model = build_model(config, data.task, None if data.classes is None else len(data.classes))
    strategies.check_compatible(strategies.get(config.strategy.name), model)  # before any run
    # The writer lease before the oracle and MLflow: a second process on this store stops here,
    # having opened no page, written no request file and touched no tracking store.
    store = open_store(config.store.url or config.store_path())
    try:
        store.take_lease()
        return _assemble(config, data, model, store, tracking_uri, progress, track)
    except BaseException:
        store.close()
        raise


def _assemble(config: ExperimentConfig, data: Prepared, model: Any, store: Any,
              tracking_uri: str | None, progress: bool, track: bool) -> ActiveLoop:
    oracle = build_oracle(config, data, config.seed)
    tracker = None
    if track:
        from alloop.tracking import MlflowTracker

        tracker = MlflowTracker(config.tracking.experiment or config.name, tracking_uri or config.tracking.uri)
    auto = None if isinstance(config.model, SklearnConfig) else config.model.auto_regularity
    if auto is None:  # default: on for the GLMs, whose refits are cheap
        auto = config.model.kind in ("logistic", "linear")
    regularity = automatic_regularity if auto else None
    scoring = None
    if config.scoring.backend == "ray":
        from alloop.scale import RayScoring

        scoring = RayScoring(address=config.scoring.address, batch_size=config.scoring.batch_size)
    return ActiveLoop(
        data.pool, model, config.strategy.name, oracle, loop_settings(config, progress),
        X_test=data.X_test, y_test=data.y_test, X_val=data.X_val, y_val=data.y_val,
        classes=data.classes, batch_rule=config.strategy.batch,
        strategy_params=config.strategy.params, regularity=regularity, scoring=scoring,
        store=store, tracker=tracker, run_name=f"{config.strategy.name}-seed{config.seed}",
        params=config.model_dump(mode="json"),
    )


def loop_settings(config: ExperimentConfig, progress: bool = True) -> LoopSettings:
    """The config's ``loop:`` section (with the label rule, unanswered policy and seed) as
    :class:`LoopSettings`."""
    from alloop.stopping import make_rule

    lp = config.loop
    initial = (lp.initial if isinstance(lp.initial, int)
               else InitialSet(lp.initial.size, lp.initial.strategy))
    return LoopSettings(
        initial=initial, batch_size=lp.batch_size, rounds=lp.rounds, budget=lp.budget,
        target=None if lp.target is None else Target(lp.target.metric, lp.target.value),
        stabilize=None if lp.stabilize is None else Stabilize(lp.stabilize.patience, lp.stabilize.tol),
        stop=[make_rule(rule.rule, **rule.params()) for rule in lp.stop],
        relabel=None if lp.relabel is None else Relabel(lp.relabel.every, lp.relabel.count),
        metrics=lp.metrics, label_rule=config.oracle.label_rule,
        unanswered=config.oracle.unanswered, seed=config.seed, progress=progress,
    )


def run_experiment(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> LoopResult:
    """Run (or resume) the loop a config describes, tracked in MLflow."""
    loop = build_loop(config, tracking_uri=tracking_uri, progress=progress)
    try:
        return loop.run(resume=resume)
    finally:
        from alloop.loop.ask import close

        close(loop.oracle)  # e.g. the web page's server
        loop.store.close()
