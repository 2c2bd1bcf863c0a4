"""Compare query strategies over seeds: run them, read them back from MLflow, report.

- :func:`compare` — run strategies × seeds of a compare config in parallel processes; the
  module itself is callable as that function, so ``alloop.compare("config.yaml", jobs=4)``
  works and ``alloop.compare.report`` stays reachable;
- :func:`report` — learning curves, the summary table and paired tests of an experiment;
- :func:`load_comparison` — the runs of an experiment as data frames, for notebooks;
- :func:`summarize` and the rest of :mod:`alloop.compare.stats` — the statistics themselves.
"""

import importlib
import sys
import types

# Loaded on first use (PEP 562): the report and runner pull in pandas, matplotlib and MLflow.
# A name maps to a submodule of this package, or to a dotted module elsewhere (the schema).
_SOURCES = {
    "CompareConfig": "alloop.config.compare",
    "load_compare_config": "alloop.config.compare",
    "parse_compare_config": "alloop.config.compare",
    "Report": "report",
    "report": "report",
    "write_page": "report",
    "CompareError": "runner",
    "compare": "runner",
    "fit_full_data": "workers",
    "Comparison": "runs",
    "load_comparison": "runs",
    "normalized_auc": "stats",
    "paired_wilcoxon": "stats",
    "summarize": "stats",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _SOURCES[name]
    value = getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`compare` (the name a notebook reaches for)."""

    def __call__(self, *args, **kwargs):
        return self.compare(*args, **kwargs)

    def __setattr__(self, name, value):
        # Importing the submodule alloop.compare.report binds it here as ``report``; the
        # package's ``report`` stays the function, as when this package imported it eagerly.
        if isinstance(value, types.ModuleType) and name in _SOURCES:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _CallableModule
