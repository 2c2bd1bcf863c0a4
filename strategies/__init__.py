"""Query strategies. Importing this package registers every built-in strategy.

>>> import strategies
>>> "entropy" in strategies.available()
True
"""

from strategies.base import Strategy
from strategies.registry import available, get, register, strategy

# Built-in strategies register themselves on import.
from strategies import random_sampling  # noqa: E402,F401  isort: skip

__all__ = ["Strategy", "available", "get", "register", "strategy"]
