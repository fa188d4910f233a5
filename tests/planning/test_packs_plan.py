"""The planner packs runs by the trainer's one rule (firm_bench.core.packs): runs differing only in pack-varying
keys share a pack; runs differing in any other key never do, so no mismatch is left for a GPU job to find."""

import itertools

import pytest
import yaml

from firm_bench.core import packs as pack_rule
from firm_bench.planning import grid as fw
from tests.helpers import CONFIGS


def _grid(**experiment) -> dict:
    """The smoke workflow config with one experiment of several classes, losses, outlier sources and seeds."""
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    exp = {"datasets": ["fmnist_mini"], "classes": [0, 1], "losses": ["firm", "ntxent"], "outliers": ["cutpaste", "scar"],
           "scores": ["cos"], **experiment}
    return {**cfg, "seeds": [0, 1], "experiments": {"smoke": exp}, "pack_runs": 64}


def _pack_of(plan) -> dict:
    return {run: pack.name for pack in fw.packs(plan) for run in pack.runs}


def test_runs_differing_only_in_pack_varying_keys_share_one_pack():
    plan = fw.plan(_grid())
    assert len(plan.runs) == 16
    (pack,) = fw.packs(plan)  # classes x losses x outlier sources x seeds: all pack-varying, equal shapes
    configs = [fw.run_config(plan, run) for run in pack.runs]
    assert len({pack_rule.pack_key(c) for c in configs}) == 1
    pack_rule.check_packable(configs)  # what the trainer checks


@pytest.mark.parametrize("key, dimension", [("seed", "seed"), ("dataset.cls", "cls"), ("loss", "loss"),
                                            ("outliers", "outliers")])
def test_a_key_the_rule_does_not_let_vary_splits_the_packs(monkeypatch, key, dimension):
    """The planner follows core.packs.PACK_VARYING: taking a key out of it puts runs differing in it in other packs."""
    monkeypatch.setattr(pack_rule, "PACK_VARYING", tuple(k for k in pack_rule.PACK_VARYING if k != key))
    plan = fw.plan(_grid())
    pack_of = _pack_of(plan)
    assert len(set(pack_of.values())) == 2  # the grid's two values of that dimension
    for a, b in itertools.combinations(plan.runs, 2):
        if getattr(a, dimension) != getattr(b, dimension):
            assert pack_of[a] != pack_of[b], (a, b)
        else:  # the other dimensions still vary within a pack
            assert pack_of[a] == pack_of[b], (a, b)


def test_runs_whose_configs_differ_in_a_shared_key_are_never_packed_together():
    """Variants differing in a key every run of a pack must share (optim.epochs): each pack holds one pack key, and
    runs of two keys are in two packs."""
    plan = fw.plan(_grid(classes=[0], outliers=["cutpaste"], variants={"short": {"optim.epochs": 1},
                                                                   "long": {"optim.epochs": 2}}))
    pack_of = _pack_of(plan)
    keys = {run: pack_rule.pack_key(fw.run_config(plan, run)) for run in plan.runs}
    assert len(set(keys.values())) == 2
    for a, b in itertools.combinations(plan.runs, 2):
        assert (pack_of[a] == pack_of[b]) == (keys[a] == keys[b]), (a, b)


def test_shipped_packs_pass_the_trainers_check():
    """Every pack of the shipped configs, at several pack sizes, passes the rule the trainer applies."""
    for name in ("smoke", "mini"):
        cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        for size in (2, 4, 32):
            plan = fw.plan({**cfg, "pack_runs": size})
            for pack in fw.packs(plan):
                assert len(pack.runs) <= size
                pack_rule.check_packable([fw.run_config(plan, run) for run in pack.runs],
                                         [str(run) for run in pack.runs])
