"""Fixtures shared across the test folders (helpers that are not fixtures: tests/helpers/)."""

import pytest


@pytest.fixture
def one_thread():
    """One CPU thread: small models, and two threads on a busy 2-core machine only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
