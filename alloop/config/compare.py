"""The compare config: an experiment config whose strategy and seed are lists.

A compare YAML is an ordinary experiment config (``alloop run`` format) without the ``strategy``,
``seed`` and ``store`` sections, plus a ``compare`` section::

    compare:
      strategies: [random, entropy, {name: sti, batch: diverse}]
      seeds: 5                  # seeds 0..4, or a list: [0, 7, 11]
      store_dir: .alloop/digits # label stores, one per (strategy, seed); this is the default

Each (strategy, seed) pair becomes one :class:`~alloop.config.ExperimentConfig` with its own
label store ``<store_dir>/<strategy>-seed<seed>.sqlite`` and MLflow run ``<strategy>-seed<seed>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alloop.config.errors import ConfigError, config_error, describe_validation_error
from alloop.config.experiment import ExperimentConfig
from alloop.config.loader import read_yaml, strategy_problems, validate_sections
from alloop.config.strategy import StrategyConfig
from alloop.config.tracking import StoreConfig

#: top-level sections a compare config sets per run, so it must not set them itself.
_PER_RUN = {
    "strategy": "list the strategies under compare.strategies",
    "seed": "give the number of seeds (or a list) as compare.seeds",
    "store": "give a folder for the per-run label stores as compare.store_dir",
}


class CompareSection(BaseModel):
    """The ``compare`` section: which strategies, which seeds, where their label stores live."""

    model_config = ConfigDict(extra="forbid")

    strategies: list[StrategyConfig] = Field(min_length=1)
    seeds: int | list[int] = Field(description="N (seeds 0..N-1) or an explicit list of seeds")
    store_dir: str | None = Field(None, description="default: .alloop/<name>")
    metric: str | None = Field(
        None, description="headline metric of the table (default: accuracy, or rmse); one of loop.metrics"
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str | None) -> str | None:
        from alloop.metrics import check_metric_name

        return None if metric is None else check_metric_name(metric)

    @field_validator("strategies", mode="before")
    @classmethod
    def _names_to_sections(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("strategies")
    @classmethod
    def _distinct(cls, value: list[StrategyConfig]) -> list[StrategyConfig]:
        names = [s.name for s in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"each strategy may be listed once; repeated: {repeated}")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"seeds must be at least 1 (got {value})")
        if isinstance(value, list):
            if not value:
                raise ValueError("seeds must list at least one seed")
            if len(set(value)) != len(value) or min(value) < 0:
                raise ValueError(f"seeds must be distinct and non-negative (got {value})")
        return value


class CompareConfig(BaseModel):
    """A validated compare config: the shared experiment settings and the compare section.

    Examples
    --------
    >>> cfg = parse_compare_config({
    ...     "name": "demo", "data": {"source": "sklearn:iris"},
    ...     "compare": {"strategies": ["random", "entropy"], "seeds": 2},
    ... })
    >>> cfg.seeds, cfg.strategy_names
    ([0, 1], ['random', 'entropy'])
    >>> cfg.run_config("entropy", 1).store_path().as_posix()
    '.alloop/demo/entropy-seed1.sqlite'
    """

    model_config = ConfigDict(frozen=True)

    base: ExperimentConfig
    compare: CompareSection

    @property
    def experiment(self) -> str:
        """The MLflow experiment holding every run of the comparison."""
        return self.base.tracking.experiment or self.base.name

    @property
    def seeds(self) -> list[int]:
        seeds = self.compare.seeds
        return list(range(seeds)) if isinstance(seeds, int) else list(seeds)

    @property
    def strategy_names(self) -> list[str]:
        return [s.name for s in self.compare.strategies]

    @property
    def store_dir(self) -> Path:
        return Path(self.compare.store_dir or Path(".alloop") / self.base.name)

    def only(self, names: Sequence[str]) -> CompareConfig:
        """The same comparison restricted to the strategies ``names`` (same experiment, stores).

        Examples
        --------
        >>> cfg = parse_compare_config({"name": "demo", "data": {"source": "sklearn:iris"},
        ...     "compare": {"strategies": ["random", "entropy"], "seeds": 2}})
        >>> cfg.only(["entropy"]).strategy_names
        ['entropy']
        """
        unknown = [n for n in names if n not in self.strategy_names]
        if unknown or not names:
            raise ValueError(
                f"--only {', '.join(unknown) or '(nothing)'}: not a strategy of this compare config; "
                f"its strategies: {', '.join(self.strategy_names)}"
            )
        kept = [s for s in self.compare.strategies if s.name in names]
        return self.model_copy(update={"compare": self.compare.model_copy(update={"strategies": kept})})

    def pairs(self) -> list[tuple[str, int]]:
        """Every (strategy, seed), seed-major, so partial results cover every strategy."""
        return [(name, seed) for seed in self.seeds for name in self.strategy_names]

    def run_config(self, strategy: str, seed: int) -> ExperimentConfig:
        """The experiment config of one (strategy, seed) run, with its own label store."""
        section = {s.name: s for s in self.compare.strategies}.get(strategy)
        if section is None:
            raise KeyError(f"strategy {strategy!r} is not compared; compared: {self.strategy_names}")
        store = self.store_dir / f"{strategy}-seed{seed}.sqlite"
        return self.base.model_copy(
            update={"seed": seed, "strategy": section, "store": StoreConfig(path=str(store))},
            deep=True,
        )

    def full_data_config(self, seed: int) -> ExperimentConfig:
        """The settings of the full-data reference fit of ``seed`` (nothing is queried or stored)."""
        return self.base.model_copy(
            update={"seed": seed, "strategy": StrategyConfig(name="random"),
                    "store": StoreConfig(path=":memory:")},
            deep=True,
        )


def parse_compare_config(data: Any, origin: str = "compare config") -> CompareConfig:
    """Validate a mapping as a :class:`CompareConfig` (the ``compare`` section and the rest)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping; got {type(data).__name__}")
    data = dict(data)
    if "compare" not in data:
        raise ConfigError(
            f"{origin} has no compare section; add one, e.g.\n"
            "  compare:\n    strategies: [random, entropy]\n    seeds: 5"
        )
    section = data.pop("compare")
    clashes = [f"  {key}: {fix}" for key, fix in _PER_RUN.items() if key in data]
    if clashes:
        raise ConfigError(
            f"{origin} sets per-run sections a comparison chooses itself; remove them:\n"
            + "\n".join(clashes)
        )
    try:
        compare = CompareSection.model_validate(section)
    except ValidationError as exc:
        raise config_error(origin, describe_validation_error(exc, "compare")) from None
    problems = strategy_problems(
        (f"compare.strategies.{i}", s) for i, s in enumerate(compare.strategies))
    if problems:
        raise config_error(origin, problems)
    base = validate_sections(data, origin)
    wanted, computed = compare.metric, base.loop.metrics
    if wanted is not None and computed is not None and wanted not in computed:
        raise ConfigError(
            f"{origin}: compare.metric {wanted!r} is not among loop.metrics {computed}; add it there"
        )
    if base.oracle.kind != "simulated":
        raise ConfigError(
            f"{origin}: oracle.kind is {base.oracle.kind!r}; alloop compare runs every strategy "
            "on every seed, so it needs the simulated oracle (oracle.kind: simulated)"
        )
    return CompareConfig(base=base, compare=compare)


def load_compare_config(path: str | Path) -> CompareConfig:
    """Read and validate a compare YAML file."""
    return parse_compare_config(read_yaml(path), str(path))
