"""Fixtures shared by several test files."""
from __future__ import annotations

import pytest
import torch
from hypothesis import settings

# No wall-clock limits in the default run (issue 8 §6): Hypothesis' default deadline (200 ms
# per example) is one, and a busy machine trips it. Work is bounded by max_examples instead.
settings.register_profile("netspec", deadline=None)
settings.load_profile("netspec")


@pytest.fixture
def one_thread():
    """Two shared cores: one intra-op thread per process is faster and reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
