"""The active-learning loop, built from named stages (see docs/architecture.md).

Each round runs select (with score) → ask → commit → fit → evaluate → report, one module each;
:class:`ActiveLoop` (:mod:`alloop.loop.core`) runs them, :class:`LoopSettings` holds its options.
"""

from alloop.loop.core import ActiveLoop
from alloop.loop.errors import InvalidAnswerError, StoreNotEmptyError
from alloop.loop.fingerprint import describe_fingerprint_change
from alloop.loop.relabel import FVMRelabel, NoRelabel, RelabelPolicy
from alloop.loop.result import LoopResult, Queries
from alloop.loop.settings import InitialSet, LoopSettings, Relabel, Stabilize, Target

__all__ = [
    "ActiveLoop", "FVMRelabel", "InitialSet", "InvalidAnswerError", "LoopResult", "LoopSettings",
    "NoRelabel", "Queries", "Relabel", "RelabelPolicy", "Stabilize", "StoreNotEmptyError",
    "Target", "describe_fingerprint_change",
]
