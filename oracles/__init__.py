"""Label sources: simulated ground truth, and people (terminal, files, web page, Label Studio)."""

from oracles.base import Answer, Oracle, OracleBase, Query
from oracles.simulated import SimulatedOracle

__all__ = ["Answer", "Oracle", "OracleBase", "Query", "SimulatedOracle"]
