"""Query strategies. Importing this package registers every built-in strategy.

Every module of this package other than ``base`` and ``registry`` registers its strategies
with :func:`strategies.registry.strategy` when imported; adding a file adds its strategies.

>>> import strategies
>>> "random" in strategies.available()
True
"""

import importlib
import pkgutil

from strategies.base import Strategy, check_compatible
from strategies.registry import available, get, register, strategy

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in {"base", "registry"} and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Strategy", "available", "check_compatible", "get", "register", "strategy"]
