"""Tests of firm_bench/core/packs.py: which config keys may differ within a pack."""

import pytest

from firm_bench.core import config
from firm_bench.core.errors import ConfigError
from firm_bench.core.packs import PACK_VARYING, check_packable, check_shapes, pack_key, shared_part


def cfg(*overrides):
    return config.resolve("smoke", overrides=list(overrides))


def test_runs_differing_in_the_varying_keys_share_a_key():
    base = pack_key(cfg())
    for pairs in (["seed=3"], ["dataset.cls=4"], ["loss.name=supcon", "loss.tau=0.5", "loss.form=concat"],
                  ["outliers.name=cutpaste"], ["optim.lr=0.1", "optim.momentum_cycle=[0.8,0.9]", "optim.weight_decay=0.0"],
                  ["optim.schedule=warmup_cosine", "optim.momentum=0.8"], ["eval.k=1", "checkpoint.select=best_test"],
                  ["features.crops=0", "scores.names=[cos]"]):
        assert pack_key(cfg(*pairs)) == base, pairs


@pytest.mark.parametrize("pair,key", [
    ("model.width=0.125", "model.width"), ("optim.epochs=3", "optim.epochs"), ("optim.batch_size=32", "optim.batch_size"),
    ("augment.jitter_p=0.5", "augment.jitter_p"), ("eval.every=2", "eval.every"), ("checkpoint.every=2", "checkpoint.every"),
    ("features.batch_size=64", "features.batch_size"), ("speed.bf16=true", "speed.bf16"), ("threads=2", "threads"),
    ("dataset.image_size=28", "dataset.image_size"),
])
def test_any_other_difference_is_refused_by_name(pair, key):
    assert pack_key(cfg(pair)) != pack_key(cfg())
    with pytest.raises(ConfigError, match=rf"run 1 cannot share a pack with run 0: {key} differs"):
        check_packable([cfg(), cfg(pair)])


def test_the_shared_part_drops_only_the_varying_keys():
    full, shared = cfg(), shared_part(cfg())
    assert "seed" not in shared and "cls" not in shared["dataset"] and "loss" not in shared
    assert shared["model"] == full["model"] and shared["speed"] == full["speed"]
    assert full["loss"]["name"] == "firm"  # the input is not modified
    assert all(isinstance(k, str) and k for k in PACK_VARYING)


def test_shapes_must_match():
    check_shapes([{"rows": 4}, {"rows": 4}], ["a", "b"])
    with pytest.raises(ConfigError, match="b cannot share a pack with a: its rows is 3, not 4"):
        check_shapes([{"rows": 4}, {"rows": 3}], ["a", "b"])
