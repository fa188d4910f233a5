"""Fixtures of the workflow tests (the Snakemake driver itself is tests.helpers.snakemake)."""

import pytest

from tests.helpers.snakemake import CONFIGS, snakemake


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke workflow (target ``all``: its runs, summaries, the paper items it feeds (Table 5, Figure 4), the
    claims and the report), run once per pytest session through Snakemake's CLI on 2 cores: a finished workflow
    directory that tests read and dry-run against, never change (a test that needs its own outputs writes them
    elsewhere)."""
    workdir = tmp_path_factory.mktemp("smoke_run")
    snakemake(workdir, "--cores", "2", "--configfile", CONFIGS / "smoke.yaml")
    return workdir
