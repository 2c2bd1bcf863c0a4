"""Label sources: simulated ground truth, and (in later modules) people."""

from oracles.base import Answer, Oracle, Query
from oracles.simulated import SimulatedOracle

__all__ = ["Answer", "Oracle", "Query", "SimulatedOracle"]
