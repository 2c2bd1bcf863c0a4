import os

import numpy as np
import pytest
import torch

# Tests run on the CPU with one thread per worker: small GLM fits are far slower when two
# threads contend for a shared core, and pytest-xdist already uses every core.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for this test session (one per xdist worker,
    each on its own free port), stopped and deleted at the end."""
    from alloop.services.postgres import find_binaries, start_postgres

    try:
        find_binaries()
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL server binaries not installed: {exc}")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def label_store_url(request, tmp_path) -> str:
    """Where a fresh label store goes, once per backend: a SQLite file, or a new PostgreSQL
    database on the session's server (``postgresql://...``, as a user would type it)."""
    if request.param == "sqlite":
        return str(tmp_path / "labels.sqlite")
    import uuid

    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"labels_{uuid.uuid4().hex[:12]}")
