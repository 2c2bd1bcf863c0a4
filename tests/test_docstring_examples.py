"""Every ``Examples`` section in alloop/, strategies/ and oracles/ runs as written (doctest)."""

import doctest
import importlib
import pkgutil
import warnings

import pytest

PACKAGES = ("alloop", "strategies", "oracles")


def modules():
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if not info.name.endswith("__main__"):  # runs the CLI when imported
                yield info.name


def examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in modules():
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra (e.g. Ray) that this machine lacks
            continue
        for test in finder.find(module):
            if test.examples and test.name.startswith(name):
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(examples()))
def test_the_example_runs(test, tmp_path, monkeypatch):
    from strategies import registry

    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    # examples that register a strategy of their own leave the registry as they found it
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
    assert runner.summarize(verbose=False).failed == 0
