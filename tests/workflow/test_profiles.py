"""Training jobs get SIGTERM before their time limit on SLURM, and the training rules let it reach the trainer."""

import re

import pytest
import yaml

from firm_bench.core.errors import ConfigError
from firm_bench.planning import grid as fw
from tests.helpers import CONFIGS, ROOT

#: every Snakemake profile the workflow ships
PROFILES = sorted(p.parent.name for p in (ROOT / "workflow" / "profiles").glob("*/config.yaml"))
RULES = (ROOT / "workflow" / "rules" / "train.smk").read_text()


@pytest.mark.parametrize("config", ["paper.yaml", "mini.yaml", "smoke.yaml"])
def test_training_jobs_get_sigterm_before_their_time_limit(config):
    cfg = fw.validate_config(yaml.safe_load((CONFIGS / config).read_text()))
    extra = fw.train_slurm_extra(cfg)
    match = re.fullmatch(r"--signal=TERM@(\d+)", extra)
    assert match, extra  # not B: (the batch shell is Snakemake waiting for the job, not the trainer)
    assert 30 <= int(match.group(1)) < 60 * cfg["resources"]["train_runtime"]  # before the limit, within the job
    try:
        from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options
    except ImportError:  # the plugin is optional ('.[slurm]')
        return
    for pattern, option in get_forbidden_slurm_options().items():
        assert not re.search(pattern, extra), f"slurm_extra sets {option}, which the plugin refuses"


def test_a_signal_after_the_time_limit_is_refused_naming_the_keys():
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    cfg["resources"] = {**cfg["resources"], "train_runtime": 5, "train_signal_s": 300}
    with pytest.raises(ConfigError, match=r"resources.train_signal_s: 300 s .*resources.train_runtime: 5 min"):
        fw.validate_config(cfg)


def test_every_training_rule_asks_for_the_signal_and_no_profile_overrides_it():
    """A run's rule and each pack's rule carry the slurm_extra; a profile's set-resources for `train` would miss
    the packs' rules (train_pack_<n>), so none has one."""
    assert RULES.count("slurm_extra=TRAIN_SLURM_EXTRA") == 2 and RULES.count("shell:") == 2
    assert {"slurm", "slurm-ci"} <= set(PROFILES)  # control: the SLURM profiles are among those read
    for name in PROFILES:
        profile = yaml.safe_load((ROOT / "workflow" / "profiles" / name / "config.yaml").read_text())
        assert not any(rule.startswith("train") for rule in profile.get("set-resources", {})), name


def test_the_training_rules_exec_the_trainer_with_line_progress():
    """exec: SIGTERM / SIGINT reach firm-bench itself, not a shell between; progress lines go to the job log."""
    shells = [part.split("\n\n")[0] for part in RULES.split("shell:")[1:]]
    assert len(shells) == 2
    for shell, command in zip(shells, ("train", "train-pack")):
        assert re.search(rf'"exec firm-bench {command} ', shell), shell
        assert "--progress lines" in shell and "--no-progress" not in shell and "--in-workflow" in shell
        assert "--exit-with $PPID" in shell and "--record-failure" in shell
