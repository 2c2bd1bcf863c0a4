"""The config package: a class per model/oracle/scoring kind, old spellings named, no registry import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alloop.config import (
    ConfigError,
    FilesConfig,
    GLMConfig,
    LabelStudioConfig,
    LocalScoring,
    MLPConfig,
    RayScoring,
    SimulatedConfig,
    SklearnConfig,
    WebConfig,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[1]


def config(**sections):
    return {"name": "x", "data": {"source": "sklearn:iris"}, **sections}


def problems(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bad.yaml")
    return str(info.value)


def test_each_kind_gets_its_own_class_and_kind_defaults_as_before():
    cfg = parse_config(config())
    assert (type(cfg.model), type(cfg.oracle), type(cfg.scoring)) == (GLMConfig, SimulatedConfig, LocalScoring)
    assert type(parse_config(config(model={"C": 2.0})).model) is GLMConfig  # kind left out: logistic
    assert type(parse_config(config(model={"kind": "mlp"})).model) is MLPConfig
    sk = parse_config(config(model={"kind": "sklearn", "estimator": "sklearn.svm.SVC"})).model
    assert type(sk) is SklearnConfig and "hidden" not in SklearnConfig.model_fields
    assert type(parse_config(config(oracle={"kind": "files", "dir": "ex"})).oracle) is FilesConfig
    assert type(parse_config(config(oracle={"kind": "web", "annotators": ["a"]})).oracle) is WebConfig
    assert type(parse_config(config(scoring={"backend": "ray"})).scoring) is RayScoring
    # the fields of one kind are not on another
    assert "host" not in SimulatedConfig.model_fields and "noise" not in WebConfig.model_fields
    assert "estimator" not in GLMConfig.model_fields and "address" not in LocalScoring.model_fields


def test_a_field_of_another_kind_is_refused_naming_the_kind_and_its_fields():
    message = problems(config(oracle={"kind": "web", "annotators": ["a"], "noise": 0.1}))
    assert "oracle.noise: oracle.kind 'web' has no such field" in message
    assert "host" in message and "(got 0.1)" in message
    message = problems(config(model={"kind": "sklearn", "estimator": "sklearn.svm.SVC", "hidden": [3]}))
    assert "model.hidden: model.kind 'sklearn' has no such field" in message


def test_required_fields_of_a_kind_and_unknown_kinds_are_named():
    assert "oracle.dir: oracle.kind 'files' needs oracle.dir" in problems(config(oracle={"kind": "files"}))
    assert "oracle.annotators: oracle.kind 'web' needs oracle.annotators" in problems(
        config(oracle={"kind": "web"}))
    assert "model.estimator: model.kind 'sklearn' needs model.estimator" in problems(
        config(model={"kind": "sklearn"}))
    assert "scoring.backend: Input should be 'local' or 'ray' (got 'spark')" in problems(
        config(scoring={"backend": "spark"}))
    assert "oracle.kind: Input should be 'simulated', 'terminal', 'files', 'web' or 'label-studio' (got 'mturk')" in problems(
        config(oracle={"kind": "mturk"}))


@pytest.mark.parametrize(("oracle", "fix"), [
    ({"aggregate": "majority"}, "oracle.aggregate: this field is gone; write oracle.label_rule"),
    ({"kind": "label-studio", "label_studio": {"url": "http://h:8080"}},
     "oracle.label_studio: this field is gone; write its keys (url, token_env, project_id, title) directly under oracle"),
])
def test_old_spellings_get_the_new_one(oracle, fix):
    assert fix in problems(config(oracle=oracle))


def test_label_studio_fields_sit_directly_under_oracle():
    o = parse_config(config(oracle={"kind": "label-studio", "url": "http://h:8080", "project_id": 4,
                                    "timeout": 60})).oracle
    assert isinstance(o, LabelStudioConfig) and (o.url, o.project_id, o.timeout) == ("http://h:8080", 4, 60)


def test_the_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config(loop={"rounds": -1})))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path} is invalid:\n  loop.rounds: Input should be greater than or equal to 0 (got -1)")


def test_importing_and_loading_a_config_imports_no_strategy_registry_until_it_checks_names():
    code = ("import sys\nimport alloop.config, alloop.config.compare, alloop.config.selection\n"
            "print('strategies' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    # ... and names are still checked when a config is loaded
    assert "strategy.name: unknown strategy 'nope'" in problems(config(strategy={"name": "nope"}))
    assert "strategy.params: strategy 'sld': unknown option 'tangent_metod'" in problems(
        config(strategy={"name": "sld", "params": {"tangent_metod": "cg"}}))


def test_every_experiment_config_in_the_repository_loads():
    from alloop.config.compare import load_compare_config
    from alloop.config.selection import load_selection_config

    # experiments/polynomial/ holds its script's own settings, not alloop configs
    paths = [p for p in sorted((ROOT / "experiments").rglob("*.yaml")) if "polynomial" not in p.parts]
    assert len(paths) > 20
    for path in paths:
        data = yaml.safe_load(path.read_text())
        load = (load_compare_config if "compare" in data else
                load_selection_config if "selection" in data else load_config)
        load(path)
