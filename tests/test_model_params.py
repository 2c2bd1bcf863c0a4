"""model.params: the names a config may set are declared by its model config class
(GLMConfig.PARAMS, MLPConfig.PARAMS); the declaration matches the constructors, each declared
name builds a model, and an unknown name is refused naming it, the valid ones and the fix."""

from __future__ import annotations

import inspect

import pytest

from alloop.config import GLMConfig, MLPConfig, parse_config
from alloop.experiment import build_model
from alloop.models.glm import GLM
from alloop.models.mlp import MLP, TorchModel

#: constructor arguments the builder sets from the config's own fields, never from params
SET_BY_CONFIG = {"self", "s", "likelihood", "device", "dtype", "kwargs", "module_fn", "hidden",
                 "epochs", "lr", "batch_size", "optimizer", "seed"}


def arguments(*classes: type) -> set[str]:
    # the test, not the library, looks at signatures: it keeps the declared lists honest
    return set().union(*(inspect.signature(c.__init__).parameters for c in classes)) - SET_BY_CONFIG


def test_declared_params_are_exactly_the_constructor_arguments_the_config_does_not_set():
    assert set(GLMConfig.PARAMS) == arguments(GLM)
    assert set(MLPConfig.PARAMS) == arguments(MLP, TorchModel)


def defaults(*classes: type) -> dict[str, object]:
    out: dict[str, object] = {}
    for c in classes:
        out |= {k: p.default for k, p in inspect.signature(c.__init__).parameters.items()}
    return out


@pytest.mark.parametrize("kind", ["logistic", "linear", "mlp"])
def test_every_declared_param_builds_a_model(kind):
    declared, classes = (MLPConfig.PARAMS, (MLP, TorchModel)) if kind == "mlp" else (GLMConfig.PARAMS, (GLM,))
    values = defaults(*classes)
    task = "regression" if kind == "linear" else "classification"
    for name in declared:
        cfg = parse_config({"name": "x", "data": {"source": "sklearn:iris"},
                            "model": {"kind": kind, "params": {name: values[name]}}})
        model = build_model(cfg, task, None if kind == "linear" else 2)
        assert model is not None, name


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_an_unknown_param_is_named_with_the_declared_ones_and_the_fix(kind):
    cfg = parse_config({"name": "x", "data": {"source": "sklearn:iris"},
                        "model": {"kind": kind, "params": {"foo": 1}}})
    with pytest.raises(ValueError) as info:
        build_model(cfg, "classification", 2)
    text = str(info.value)
    declared = MLPConfig.PARAMS if kind == "mlp" else GLMConfig.PARAMS
    assert "model.params {'foo': 1}" in text and "foo" in text
    assert f"valid params: {', '.join(sorted(declared))}." in text
    assert "Fix or remove them in the config's model.params" in text
