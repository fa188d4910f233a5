"""The SLURM profiles ask for a signal before the time limit, and the train rule lets it reach the trainer."""

import re

import pytest
import yaml

from tests.helpers import ROOT

PROFILES = ["slurm", "slurm-ci"]


@pytest.mark.parametrize("name", PROFILES)
def test_training_jobs_get_sigterm_before_their_time_limit(name):
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / name / "config.yaml").read_text())
    extra = profile["set-resources"]["train"]["slurm_extra"]
    assert extra.startswith("'") and extra.endswith("'")  # a string resource: Snakemake evaluates the value
    match = re.fullmatch(r"--signal=TERM@(\d+)", extra.strip("'"))
    assert match, extra  # not B: (the batch shell is Snakemake waiting for the job, not the trainer)
    assert 30 <= int(match.group(1)) <= 600
    runtime = profile["default-resources"]["runtime"]
    assert int(match.group(1)) < 60 * runtime  # the signal comes before the limit, within the job
    try:
        from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options
    except ImportError:  # the plugin is optional ('.[slurm]')
        return
    for pattern, option in get_forbidden_slurm_options().items():
        assert not re.search(pattern, extra), f"slurm_extra sets {option}, which the plugin refuses"


def test_the_train_rule_execs_the_trainer_with_line_progress():
    """exec: SIGTERM / SIGINT reach firm-bench itself, not a shell between; progress lines go to the job log."""
    rule = (ROOT / "workflow" / "rules" / "train.smk").read_text()
    shell = rule[rule.index("shell:"):]
    assert re.search(r'"exec firm-bench train ', shell), shell
    assert "--progress lines" in shell and "--no-progress" not in shell and "--in-workflow" in shell
