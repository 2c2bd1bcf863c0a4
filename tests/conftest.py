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
