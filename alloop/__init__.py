"""alloop: active-learning loops with regularity-tangent and influence-based queries."""

__version__ = "0.1.0"
