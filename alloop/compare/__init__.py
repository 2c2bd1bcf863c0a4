"""Compare query strategies over seeds: run them, read them back from MLflow, report.

- :func:`compare` — run strategies × seeds of a compare config in parallel processes; the
  module itself is callable as that function, so ``alloop.compare("config.yaml", jobs=4)``
  works and ``alloop.compare.report`` stays reachable;
- :func:`report` — learning curves, the summary table and paired tests of an experiment;
- :func:`load_comparison` — the runs of an experiment as data frames, for notebooks;
- :func:`summarize` and the rest of :mod:`alloop.compare.stats` — the statistics themselves.
"""

import sys
import types

from alloop.compare.config import CompareConfig, load_compare_config, parse_compare_config
from alloop.compare.report import Report, report, write_page
from alloop.compare.runner import CompareError, compare, fit_full_data
from alloop.compare.runs import Comparison, load_comparison
from alloop.compare.stats import normalized_auc, paired_wilcoxon, summarize

__all__ = [
    "CompareConfig",
    "CompareError",
    "Comparison",
    "Report",
    "compare",
    "fit_full_data",
    "load_compare_config",
    "load_comparison",
    "normalized_auc",
    "paired_wilcoxon",
    "parse_compare_config",
    "report",
    "summarize",
    "write_page",
]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`compare` (the name a notebook reaches for)."""

    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
