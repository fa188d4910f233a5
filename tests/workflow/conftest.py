"""Fixtures of the workflow tests (the Snakemake driver itself is tests.helpers.snakemake)."""

import pytest


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
