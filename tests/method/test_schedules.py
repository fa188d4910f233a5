"""The learning-rate schedules' momentum: what each schedule actually trains with (METHOD.md "Training recipe")."""

import math

import pytest
import torch

from firm_bench.core import config
from firm_bench.method.schedules import SCHEDULES
from firm_bench.records.metrics import recipe_labels


def _momenta(cfg: dict, total: int = 1000, per_epoch: int = 10) -> list[float]:
    """The SGD momentum of every step when the schedule of ``cfg`` drives an optimiser built as training builds it."""
    optim = cfg["optim"]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=optim["lr"], momentum=optim["momentum"], weight_decay=optim["weight_decay"])
    sched = SCHEDULES.get(optim["schedule"])(opt, total, per_epoch, optim)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return out


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * frac) + 1)


def test_onecycle_cycles_the_momentum_as_the_reference_ran_it():
    """OneCycleLR with PyTorch's cycle_momentum defaults (Willtl/firm util.py get_scheduler passes none):
    0.95 at step 0, cosine down to 0.85 at the peak learning rate, cosine back to 0.95 at the last step.
    optim.momentum (0.9) is never the momentum of any step."""
    cfg = config.resolve("paper", overrides=["optim.pct_start=0.3"])
    total = 1000
    got = _momenta(cfg, total)
    peak = 0.3 * total - 1  # PyTorch's phase boundary: float(pct_start * total_steps) - 1
    want = [_cos(0.95, 0.85, s / peak) if s <= peak else _cos(0.85, 0.95, (s - peak) / (total - 1 - peak))
            for s in range(total)]
    assert got == pytest.approx(want, abs=1e-9)
    assert min(got) == pytest.approx(0.85, abs=1e-4) and got[0] == got[-1] == pytest.approx(0.95)
    assert recipe_labels(cfg)["momentum"] == "cycled 0.95-0.85-0.95"


def test_a_held_momentum_is_the_configured_one():
    """momentum_cycle: null (onecycle) and warmup_cosine hold optim.momentum at every step: the key acts."""
    for overrides in (["optim.momentum_cycle=null", "optim.momentum=0.5"],
                      ["optim.schedule=warmup_cosine", "optim.momentum=0.5"]):
        cfg = config.resolve("paper", overrides=overrides)
        assert set(_momenta(cfg, 200)) == {0.5}, overrides
        assert recipe_labels(cfg)["momentum"] == "0.5"


def test_other_cycle_bounds_are_used():
    cfg = config.resolve("paper", overrides=["optim.momentum_cycle=[0.5, 0.7]", "optim.pct_start=0.5"])
    got = _momenta(cfg, 400)
    assert got[0] == pytest.approx(0.7) and min(got) == pytest.approx(0.5, abs=1e-4) and got[-1] == pytest.approx(0.7)
    assert recipe_labels(cfg)["momentum"] == "cycled 0.7-0.5-0.7"


def test_every_schedule_says_what_it_does_with_the_momentum():
    """The declared fact config validation reads (no torch) matches what the schedule does."""
    from firm_bench.core.facts.method import SCHEDULES

    for name in SCHEDULES:
        cfg = config.resolve("paper", overrides=[f"optim.schedule={name}"])
        cycles = len(set(_momenta(cfg, 200))) > 1
        assert SCHEDULES[name] == ("cycle" if cycles else "constant"), name
