"""Fixtures shared by the run tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: the uninterrupted reference run of the kill-and-resume tests (firm-bench train, CPU, one thread)
STRAIGHT_EPOCHS = 3
STRAIGHT_SETS = ["--set", f"optim.epochs={STRAIGHT_EPOCHS}", "--set", "device=cpu", "--set", "threads=1"]


@pytest.fixture(scope="session")
def straight_smoke(tmp_path_factory):
    """A smoke run trained uninterrupted by ``firm-bench train``, once per session."""
    run = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run([sys.executable, "-m", "firm_bench.cli", "train", "--preset", "smoke", *STRAIGHT_SETS,
                    "--no-progress", "--run-dir", str(run)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    return run
