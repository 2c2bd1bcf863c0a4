"""Property-based fuzz of the annotation API with schemathesis, against the app's own OpenAPI
schema: no 5xx, and a request that is refused (unauthorised, malformed, not yours) stores
nothing. Bounded: ``FUZZ_EXAMPLES`` cases per operation and way of signing in."""

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_web_security import Team  # the same board, store and tokens

from oracles.web.app import create_app
from oracles.web.guards import FailureBudget

FUZZ_EXAMPLES = 40
FIGURES = {"requests": 0, "server_errors": 0, "stored_on_refusal": 0}


# Built at import: schemathesis makes one test per operation of a schema it can read when the
# module is collected (its fixture-based loader does not work with this pytest).
TEAM = Team(Path(tempfile.mkdtemp(prefix="alloop-fuzz-")))
# a budget no fuzzing can spend: bad tokens are part of the fuzz, 429s would hide the routes
APP = create_app(TEAM.board, TEAM.tokens, failure_budget=FailureBudget(10**9), openapi=True)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def team():
    yield TEAM
    TEAM.store.close()
    print(f"\nschemathesis figures: {FIGURES}")


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_never_fails_and_refusals_store_nothing(case, team):
    """Each generated request is sent three ways: no token, a bad token, as ann."""
    for auth, headers in (("none", {}), ("wrong", {"Authorization": "Bearer not-a-token"}),
                          ("ann", team.bearer("ann"))):
        before = len(team.store)
        response = case.call(headers={**(case.headers or {}), **headers})
        FIGURES["requests"] += 1
        if response.status_code >= 500:
            FIGURES["server_errors"] += 1
        assert response.status_code < 500, (auth, case.method, case.path, case.body, response.text)
        stored = len(team.store) - before
        if response.status_code != 200 or auth != "ann":
            FIGURES["stored_on_refusal"] += stored
            assert stored == 0, (auth, case.method, case.path, case.body, response.status_code)
