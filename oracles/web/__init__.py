"""The web annotation page: a team labels the loop's batches in their browsers.

:class:`WebOracle` serves the page (FastAPI on uvicorn) while the loop runs; :class:`TokenStore`
keeps the annotators' tokens (hashed). See ``docs/web.md``.
"""

from oracles.web.oracle import WebOracle
from oracles.web.tokens import TokenStore

__all__ = ["TokenStore", "WebOracle"]
