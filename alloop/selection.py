"""Influence-based data selection: what ``alloop select CONFIG`` does.

Given labeled data, train on a *base* set, score labeled *candidates* with IP-adding
(:mod:`alloop.influence.ip_adding`, ``docs/math.md`` §6) against a *validation* set, choose a
subset, retrain on base ∪ subset and report its test metrics next to the base-only model's and
(optionally) the base ∪ all-candidates model's.

The config is an ordinary experiment config (``data``, ``model``, ``tracking``, …; see
:mod:`alloop.config`) plus a ``selection:`` section, validated here::

    selection:
      validation: 0.2      # fraction of the training split held out to score against
      base: 0.6            # fractions of the rest: the base set …
      candidate: 0.4       # … and the labeled candidates
      method: method1      # method1 | topk | weighted
      budget: 0.1          # topk/weighted: a count (int) or a fraction of the candidates

``data.test_size`` sets the test split as usual. If ``data.validation_size`` is set, that split
is the validation set and ``selection.validation`` must be left out. ``strategy``, ``loop`` and
``oracle`` are accepted (a loop config can be reused) and ignored.

Methods (the paper's Method 1 and the budgeted variants):

* ``method1`` — add every candidate with a positive score (no budget);
* ``topk`` — the ``budget`` highest scores;
* ``weighted`` — scores with each validation point weighted by its residual |τ_j − f_j| (so the
  score is the first-order decrease of ½Σ_j(τ_j − f_j)²), then the ``budget`` highest, or every
  positive one without a budget.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Method = Literal["method1", "topk", "weighted"]

#: The ``selection:`` keys; everything else in the file is the experiment config.
SECTION = "selection"


# ----------------------------------------------------------------------------- the config
class SelectionOptions(BaseModel):
    """The ``selection:`` section of a config."""

    model_config = ConfigDict(extra="forbid")

    validation: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="fraction of the training split held out to score against (default 0.2; "
        "leave unset when data.validation_size is set)",
    )
    base: float = Field(0.6, gt=0.0, le=1.0, description="fraction of the rest used as base set")
    candidate: float = Field(0.4, gt=0.0, le=1.0, description="fraction of the rest used as candidates")
    method: Method = "method1"
    budget: int | float | None = Field(
        None, description="topk/weighted: a count (int ≥ 1) or a fraction in (0, 1] of the candidates"
    )
    solver: Literal["exact", "cg"] = Field("exact", description="how H⁻¹ is applied (alloop.linalg.solve)")
    damping: float = Field(0.0, ge=0.0, description="added to the Hessian's diagonal")
    compare_full: bool = Field(True, description="also fit base ∪ all candidates, for reference")

    @model_validator(mode="after")
    def _consistent(self) -> SelectionOptions:
        if self.base + self.candidate > 1.0 + 1e-9:
            raise ValueError(
                f"base ({self.base}) + candidate ({self.candidate}) exceed 1: they are fractions of "
                "the same items"
            )
        b = self.budget
        if isinstance(b, bool):
            raise ValueError(f"budget must be a count or a fraction; got {b!r}")
        if isinstance(b, int) and b < 1:
            raise ValueError(f"a budget count must be at least 1; got {b}")
        if isinstance(b, float) and not 0.0 < b <= 1.0:
            raise ValueError(f"a fractional budget must lie in (0, 1]; got {b} (write an int for a count)")
        if self.method == "topk" and b is None:
            raise ValueError("method 'topk' needs a budget: a count (e.g. 200) or a fraction (e.g. 0.1)")
        if self.method == "method1" and b is not None:
            raise ValueError(
                "method 'method1' keeps every candidate with a positive score and takes no budget; "
                "use method 'topk' to spend a budget"
            )
        return self


@dataclass(frozen=True)
class SelectionConfig:
    """A parsed ``alloop select`` config: the experiment part and the selection options."""

    experiment: Any  # alloop.config.ExperimentConfig
    selection: SelectionOptions


def parse_selection_config(data: Any, origin: str = "config") -> SelectionConfig:
    """Validate a mapping with an experiment part and a ``selection:`` section.

    Raises
    ------
    alloop.config.ConfigError
        Naming every bad field, as ``selection.budget: …`` or ``model.kind: …``.
    """
    from alloop.config import ConfigError, describe_validation_error, parse_config

    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping; got {type(data).__name__}")
    data = dict(data)
    raw = data.pop(SECTION, None)
    problems: list[str] = []
    options = None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"  {SECTION}: must be a mapping; got {raw!r}")
    else:
        try:
            options = SelectionOptions.model_validate(raw)
        except ValidationError as exc:
            problems.extend(describe_validation_error(exc, SECTION, SelectionOptions.model_fields))
    try:
        experiment = parse_config(data, origin)
    except ConfigError as exc:
        problems.insert(0, str(exc).split(":\n", 1)[-1])
        experiment = None
    if experiment is not None and options is not None:
        if experiment.data.validation_size > 0 and options.validation is not None:
            problems.append(
                f"  {SECTION}.validation: data.validation_size is set ({experiment.data.validation_size}); "
                "that split is the validation set, so leave selection.validation out"
            )
        if experiment.model.kind not in ("logistic", "linear", "mlp"):
            problems.append(
                f"  model.kind: IP-adding needs a differentiable model (logistic, linear or mlp); "
                f"got {experiment.model.kind!r}"
            )
        if experiment.model.auto_regularity:
            problems.append(
                "  model.auto_regularity: alloop select uses the model's s as given; set s (or C, "
                "alpha) and leave auto_regularity out"
            )
    if problems:
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(problems))
    assert experiment is not None and options is not None
    return SelectionConfig(experiment, options)


def load_selection_config(path: str | Path, **overrides: Any) -> SelectionConfig:
    """Read a YAML file and validate it with :func:`parse_selection_config`."""
    from alloop.config import read_yaml

    return parse_selection_config(read_yaml(path, **overrides), str(path))


# ----------------------------------------------------------------------------- splitting
@dataclass(frozen=True)
class CandidateSplit:
    """Positions of the base, candidate and validation items (disjoint, each sorted)."""

    base: np.ndarray
    candidate: np.ndarray
    validation: np.ndarray


def _draw(index: np.ndarray, k: int, labels: np.ndarray | None, rng: np.random.RandomState, part: str):
    """(taken, kept): ``k`` items of ``index``, stratified by ``labels`` where that is possible."""
    from sklearn.model_selection import train_test_split

    if k == 0:
        return index[:0], index
    if k >= index.size:
        return index, index[:0]
    strata = None if labels is None else labels[index]
    try:
        kept, taken = train_test_split(index, test_size=k, random_state=rng, stratify=strata)
    except ValueError as exc:
        if strata is None:
            raise
        warnings.warn(f"the {part} set is drawn without stratification: {exc}", UserWarning, stacklevel=3)
        kept, taken = train_test_split(index, test_size=k, random_state=rng)
    return taken, kept


def split_candidates(
    y: Any,
    *,
    base: float = 0.6,
    candidate: float = 0.4,
    validation: float = 0.0,
    seed: int = 0,
    stratify: bool = True,
) -> CandidateSplit:
    """Split n labeled items into validation, base and candidate sets.

    ``validation`` is a fraction of all n items (rounded up); ``base`` and ``candidate`` are
    fractions of the remaining m (base rounded to nearest; when they sum to 1 the candidates are
    the rest). Classification labels (non-float ``y``) are stratified where possible.

    Examples
    --------
    >>> s = split_candidates(np.repeat([0, 1], 50), base=0.6, candidate=0.4, validation=0.2)
    >>> len(s.validation), len(s.base), len(s.candidate)
    (20, 48, 32)
    """
    y = np.asarray(y)
    n = y.shape[0]
    if not (0.0 <= validation < 1.0 and 0.0 < base <= 1.0 and 0.0 < candidate <= 1.0):
        raise ValueError(
            f"need 0 ≤ validation < 1 and base, candidate in (0, 1]; got {validation}, {base}, {candidate}"
        )
    if base + candidate > 1.0 + 1e-9:
        raise ValueError(f"base ({base}) + candidate ({candidate}) exceed 1")
    n_val = math.ceil(validation * n - 1e-9)
    m = n - n_val
    n_base = int(round(base * m))
    n_cand = m - n_base if abs(base + candidate - 1.0) <= 1e-9 else int(round(candidate * m))
    if n_base < 1 or n_cand < 1 or (validation > 0 and n_val < 1):
        raise ValueError(
            f"{n} items give {n_base} base, {n_cand} candidate and {n_val} validation items; every "
            "part needs at least one: use more data or larger fractions"
        )
    labels = y if stratify and y.dtype.kind not in "fc" else None
    rng = np.random.RandomState(seed)
    validation_index, rest = _draw(np.arange(n), n_val, labels, rng, "validation")
    base_index, rest = _draw(rest, n_base, labels, rng, "base")
    candidate_index, _ = _draw(rest, n_cand, labels, rng, "candidate")
    return CandidateSplit(np.sort(base_index), np.sort(candidate_index), np.sort(validation_index))


# ----------------------------------------------------------------------------- select and retrain
@dataclass(frozen=True)
class SelectionResult:
    """What :func:`select_and_retrain` found.

    Attributes
    ----------
    scores : ndarray, shape (n_cand,)
        IP-adding score of every candidate (higher: adding it helps the validation predictions).
    selected : ndarray of int
        Positions of the chosen candidates, highest score first.
    base_model, model
        Fitted on the base set, and on base ∪ selected.
    metrics, base_metrics : dict
        Test metrics of ``model`` and ``base_model`` (empty without a test set).
    full_metrics : dict or None
        Test metrics of a model fitted on base ∪ all candidates (``compare_full``).
    seconds : dict
        Wall-clock time of each step: ``fit_base``, ``score``, ``fit_selected``, ``fit_full``.
    """

    scores: np.ndarray
    selected: np.ndarray
    base_model: Any
    model: Any
    metrics: dict[str, float]
    base_metrics: dict[str, float]
    full_metrics: dict[str, float] | None
    seconds: dict[str, float] = field(default_factory=dict)


def stack_rows(*parts: Any) -> Any:
    """Row-stack numpy arrays or scipy sparse matrices (CSR out if any part is sparse)."""
    import scipy.sparse as sp

    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.vstack([np.asarray(p) for p in parts])


def method_options(method: Method, budget: int | float | None) -> tuple[str | None, int | float | None]:
    """(validation weights, budget) that :func:`alloop.influence.select_subset` takes for a method."""
    if method == "method1":
        if budget is not None:
            raise ValueError("method 'method1' takes no budget (it keeps every positive score)")
        return None, None
    if method == "topk":
        if budget is None:
            raise ValueError("method 'topk' needs a budget (a count or a fraction of the candidates)")
        return None, budget
    if method == "weighted":
        return "residual", budget
    raise ValueError(f"unknown method {method!r}; expected 'method1', 'topk' or 'weighted'")


def select_and_retrain(
    model: Any,
    X_base: Any,
    y_base: Any,
    X_cand: Any,
    y_cand: Any,
    X_val: Any,
    y_val: Any,
    *,
    method: Method = "method1",
    budget: int | float | None = None,
    classes: Any | None = None,
    X_test: Any | None = None,
    y_test: Any | None = None,
    solver: str = "exact",
    damping: float = 0.0,
    compare_full: bool = True,
) -> SelectionResult:
    """Fit on the base set, score the candidates by IP-adding, select, refit on base ∪ selected.

    Parameters
    ----------
    model : DifferentiableModel
        An unfitted template (it is cloned); an alloop GLM or torch model.
    X_base, y_base, X_cand, y_cand, X_val, y_val : array-like
        Features (dense or scipy sparse) and raw labels.
    method, budget
        See the module docstring.
    classes : array-like, optional
        Every class label (default: those in the base set). Candidates or validation points
        with other labels are refused.
    X_test, y_test : array-like, optional
        Test data for the reported metrics.
    solver, damping
        Passed to :func:`alloop.linalg.solve`.
    compare_full : bool
        Also fit on base ∪ all candidates and report its test metrics.

    Examples
    --------
    >>> from alloop.models import LogisticGLM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    >>> out = select_and_retrain(LogisticGLM(s=0.0), X[:50], y[:50], X[50:150], y[50:150],
    ...                          X[150:], y[150:], method="topk", budget=20)
    >>> out.selected.shape, out.scores.shape
    ((20,), (100,))
    """
    from alloop.influence import select_subset
    from alloop.metrics import evaluate

    weights, k = method_options(method, budget)
    seconds: dict[str, float] = {}
    fit_kwargs = {} if classes is None else {"classes": classes}

    t0 = time.perf_counter()
    base_model = model.clone().fit(X_base, np.asarray(y_base), **fit_kwargs)
    seconds["fit_base"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    chosen = select_subset(
        base_model, X_cand, np.asarray(y_cand), X_val, np.asarray(y_val),
        budget=k, weights=weights, method=solver, damping=damping,
    )
    seconds["score"] = time.perf_counter() - t0

    def refit(index: np.ndarray) -> Any:
        X = stack_rows(X_base, _rows(X_cand, index))
        y = np.concatenate([np.asarray(y_base), np.asarray(y_cand)[index]])
        # with_s keeps θ̂ of the base model as a warm start (GLMs); the base model is untouched.
        return base_model.with_s(base_model.s).fit(X, y, **fit_kwargs)

    t0 = time.perf_counter()
    selected_model = refit(chosen.index) if chosen.index.size else base_model
    seconds["fit_selected"] = time.perf_counter() - t0

    def test_metrics(m: Any) -> dict[str, float]:
        if X_test is None or y_test is None:
            return {}
        known = None if classes is None else np.asarray(sorted(classes))
        return evaluate(m, X_test, np.asarray(y_test), known)

    full_metrics = None
    if compare_full:
        t0 = time.perf_counter()
        full_metrics = test_metrics(refit(np.arange(chosen.scores.size)))
        seconds["fit_full"] = time.perf_counter() - t0
    return SelectionResult(
        scores=chosen.scores,
        selected=chosen.index,
        base_model=base_model,
        model=selected_model,
        metrics=test_metrics(selected_model),
        base_metrics=test_metrics(base_model),
        full_metrics=full_metrics,
        seconds=seconds,
    )


def _rows(X: Any, index: np.ndarray) -> Any:
    return X[np.asarray(index, dtype=np.int64)]


# ----------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class SelectionRun:
    """What :func:`select_command` wrote: the result, the output folder and the MLflow run id."""

    result: SelectionResult
    out: Path
    run_id: str | None
    counts: dict[str, int]


def _prepare(config: SelectionConfig) -> dict[str, Any]:
    """Load and split the data: base, candidate, validation and test features and labels."""
    from alloop.experiment import prepare_data

    exp, opts = config.experiment, config.selection
    data = prepare_data(exp)
    ids = data.pool.ids
    y = np.asarray([data.truth[i] for i in ids.tolist()])
    has_val = data.X_val is not None
    split = split_candidates(
        y, base=opts.base, candidate=opts.candidate,
        validation=0.0 if has_val else (opts.validation if opts.validation is not None else 0.2),
        seed=exp.seed,
    )
    X = data.pool.X
    out = {
        "ids": ids, "classes": data.classes, "task": data.task,
        "X_base": _rows(X, split.base), "y_base": y[split.base],
        "X_cand": _rows(X, split.candidate), "y_cand": y[split.candidate], "cand_ids": ids[split.candidate],
        "X_test": data.X_test, "y_test": data.y_test,
    }
    if has_val:
        out["X_val"], out["y_val"] = data.X_val, np.asarray(data.y_val)
    else:
        out["X_val"], out["y_val"] = _rows(X, split.validation), y[split.validation]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def select_command(
    config_path: str | Path,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    *,
    seed: int | None = None,
    track: bool = True,
) -> SelectionRun:
    """Run a data-selection config end to end: what ``alloop select CONFIG`` does.

    Writes into ``out`` (default ``.alloop/<name>/selection``):

    * ``selected.csv`` — id, label, score and rank of every chosen candidate, best first;
    * ``candidate_scores.csv`` — every candidate's id, label, score and whether it was chosen;
    * ``metrics.json`` — the retrained model's test metrics (``test``), the base-only and
      base ∪ all-candidates references, the set sizes and timings.

    and logs one MLflow run (experiment: ``tracking.experiment`` or the config name; tag
    ``alloop=select``) with the config as params, the metrics, and those files as artifacts.

    Parameters
    ----------
    config_path : path
        YAML config (see the module docstring).
    tracking_uri : str, optional
        MLflow URI; default the config's ``tracking.uri``, then ``MLFLOW_TRACKING_URI``, then
        ``sqlite:///mlflow.db``.
    out : path, optional
        Output folder (created).
    seed : int, optional
        Overrides the config's seed.
    track : bool
        Log to MLflow.
    """
    import pandas as pd

    from alloop.experiment import build_model

    config = load_selection_config(config_path, seed=seed)
    exp, opts = config.experiment, config.selection
    d = _prepare(config)
    n_classes = None if d["classes"] is None else len(d["classes"])
    template = build_model(exp, d["task"], n_classes)
    result = select_and_retrain(
        template, d["X_base"], d["y_base"], d["X_cand"], d["y_cand"], d["X_val"], d["y_val"],
        method=opts.method, budget=opts.budget, classes=d["classes"],
        X_test=d["X_test"], y_test=d["y_test"], solver=opts.solver, damping=opts.damping,
        compare_full=opts.compare_full,
    )
    counts = {
        "n_base": int(len(d["y_base"])),
        "n_candidates": int(len(d["y_cand"])),
        "n_validation": int(len(d["y_val"])),
        "n_test": 0 if d["y_test"] is None else int(len(d["y_test"])),
        "n_selected": int(result.selected.size),
    }

    out_dir = Path(out) if out is not None else Path(".alloop") / exp.name / "selection"
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = np.empty(result.scores.size, dtype=np.int64)
    rank[result.selected] = np.arange(1, result.selected.size + 1)
    chosen = np.zeros(result.scores.size, dtype=bool)
    chosen[result.selected] = True
    table = pd.DataFrame({
        "id": d["cand_ids"], "label": d["y_cand"], "score": result.scores, "selected": chosen,
    })
    table.to_csv(out_dir / "candidate_scores.csv", index=False)
    picked = table.iloc[result.selected].drop(columns="selected").assign(rank=rank[result.selected])
    picked.to_csv(out_dir / "selected.csv", index=False)
    report = {
        "test": result.metrics,
        "base_only": result.base_metrics,
        "base_plus_all_candidates": result.full_metrics,
        **counts,
        "selected_fraction": counts["n_selected"] / counts["n_candidates"],
        "method": opts.method,
        "budget": opts.budget,
        "seconds": result.seconds,
    }

    run_id = None
    with _selection_run(config, tracking_uri, track) as run:
        run_id = run.run_id
        if run_id is not None:
            report["mlflow_run_id"] = run_id
        (out_dir / "metrics.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
        if run_id is not None:
            _log_results(run, config, report, out_dir)
    return SelectionRun(result, out_dir, run_id, counts)


def _selection_run(config: SelectionConfig, tracking_uri: str | None, track: bool) -> Any:
    """A one-off run in the config's experiment (tag ``alloop=select``), or a null one."""
    from alloop.tracking.base import NullTracker

    if not track:
        return NullTracker().one_off_run("select")
    from alloop.tracking.mlflow_tracker import MlflowTracker

    exp = config.experiment
    tracker = MlflowTracker(exp.tracking.experiment or exp.name, tracking_uri or exp.tracking.uri)
    return tracker.one_off_run(
        f"select-{config.selection.method}-seed{exp.seed}", tags={"alloop": "select"}
    )


def _log_results(run: Any, config: SelectionConfig, report: dict[str, Any], out_dir: Path) -> None:
    """Params (the config), metrics (test metrics, set sizes, timings) and the output files."""
    exp = config.experiment
    run.log_params({**exp.model_dump(mode="json"), SECTION: config.selection.model_dump(mode="json")})
    values = {k: float(report[k]) for k in ("n_base", "n_candidates", "n_validation", "n_test",
                                            "n_selected", "selected_fraction")}
    for prefix, key in (("test", "test"), ("base_only", "base_only"),
                        ("base_plus_all", "base_plus_all_candidates")):
        values.update({f"{prefix}.{k}": float(v) for k, v in (report[key] or {}).items()})
    values.update({f"seconds.{k}": float(v) for k, v in report["seconds"].items()})
    run.log_metrics(values)
    for name in ("selected.csv", "candidate_scores.csv", "metrics.json"):
        run.log_artifact(out_dir / name)


# ----------------------------------------------------------------------------- the CLI entry
def select_cli(
    config: Annotated[Path, typer.Argument(help="YAML config with a selection: section")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: .alloop/<name>/selection)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
) -> None:
    """Select training data by influence (IP-adding): fit on a base set, score labeled
    candidates against a validation set, retrain on base ∪ selected; one MLflow run."""
    from rich.console import Console
    from rich.table import Table

    from alloop.config import ConfigError

    err = Console(stderr=True)
    try:
        run = select_command(config, tracking_uri=tracking_uri, out=out, seed=seed)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {str(exc).strip(chr(39) + chr(34))}", highlight=False)
        raise typer.Exit(code=2) from None
    r, c = run.result, run.counts
    table = Table(title=f"IP-adding selection: {c['n_selected']} of {c['n_candidates']} candidates")
    names = list(r.metrics or r.base_metrics)
    table.add_column("model")
    table.add_column("train size", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    rows = [("base only", c["n_base"], r.base_metrics)]
    if r.full_metrics is not None:
        rows.append(("base + all candidates", c["n_base"] + c["n_candidates"], r.full_metrics))
    rows.append(("base + selected", c["n_base"] + c["n_selected"], r.metrics))
    for label, size, metrics in rows:
        table.add_row(label, str(size), *[f"{metrics[n]:.4f}" for n in names if n in metrics])
    Console().print(table)
    Console().print(f"wrote {run.out}/selected.csv and metrics.json")
    if run.run_id:
        Console().print(f"MLflow run: {run.run_id}  (browse with: alloop ui)")
