"""One recipe name rule (``config.recipe_name``) for the command line, packs and the workflow: two configs that
train different numbers never share a run directory; the same recipe is named alike however it is asked for."""

import pytest
import yaml

from firm_bench.cli import main
from firm_bench.core import config
from firm_bench.core.errors import ConfigError
from firm_bench.core.rundir import Run
from firm_bench.planning import grid

MINI_RUN = ("fmnist_mini", "0", "firm", "rot")  # README's Quick start run, also Table 1 of the mini workflow


def _cli_run_dir(capsys, *args: str) -> str:
    assert main(["config", *args]) == 0
    return capsys.readouterr().out.splitlines()[0].removeprefix("# run directory: ")


def _planned(name: str, cfg: dict | None = None) -> dict[tuple, str]:
    """(dataset, cls, loss, outliers, seed) -> run directory of each run of the seed-0 base recipe."""
    p = grid.plan(cfg if cfg is not None else grid.load_workflow_config(name))
    return {(r.dataset, r.cls, r.loss, r.outliers, r.seed): r.path(p.config["runs_root"])
            for r in p.runs if config.recipe_variant(r.recipe) == "base"}


def test_quick_start_then_mini_workflow_trains_the_mini_recipe_in_its_own_directory(capsys):
    quick = _cli_run_dir(capsys, "--preset", "mini")  # README's Quick start: firm-bench run --preset mini (30 epochs)
    assert quick == "results/runs/fmnist_mini/0/firm/rot/mini/seed0"
    mini = _planned("mini")[(*MINI_RUN, 0)]  # the mini workflow: run_overrides optim.epochs 6, features.crops 2, ...
    quickstart = _planned("quickstart")[(*MINI_RUN, 0)]  # preset mini too, 10 epochs
    assert len({quick, mini, quickstart}) == 3, (quick, mini, quickstart)
    # the one rule: the command line given the mini workflow's overrides lands in the workflow's directory
    overrides = grid.load_workflow_config("mini")["run_overrides"]
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    assert _cli_run_dir(capsys, "--preset", "mini", *sets) == mini


def test_every_override_of_a_workflow_names_its_recipe_and_run_local_keys_do_not():
    wf = grid.load_workflow_config("mini")
    base = _planned("mini", wf)
    moved = _planned("mini", {**wf, "data_root": "/elsewhere/data", "oe_path": "/elsewhere/oe.npy", "pack_runs": 4,
                              "gpu_slots": 2, "run_overrides": {**wf["run_overrides"], "device": "cpu",
                                                                 "threads": 3}})
    assert moved == base  # where the data lies, the device, threads, packs and GPU slots rename nothing
    changed = _planned("mini", {**wf, "run_overrides": {**wf["run_overrides"], "optim.epochs": 7}})
    assert set(changed) == set(base) and not set(changed.values()) & set(base.values())


def test_a_workflow_variant_is_named_by_its_overrides_too(tmp_path):
    wf = grid.load_workflow_config("smoke")
    exp = wf["experiments"]["smoke"]
    exp["variants"] = {"base": {}, "hot": {"loss.tau": 0.5}}
    p = grid.plan(wf)
    recipes = sorted({r.recipe for r in p.runs})
    hot = next(r for r in recipes if config.recipe_variant(r) == "hot")
    assert hot.startswith("smoke-hot+") and config.recipe_variant(next(r for r in recipes if r != hot)) == "base"
    other = {**wf, "experiments": {"smoke": {**exp, "variants": {"hot": {"loss.tau": 0.3}}}}}
    assert {r.recipe for r in grid.plan(other).runs} != {hot}  # the same variant name, another recipe: its own
    exp["variants"] = {"a+b": {"loss.tau": 0.5}}
    with pytest.raises(ConfigError, match=r"experiments.smoke.variants.a\+b: variant 'a\+b'.*may not contain '\+'"):
        grid.plan(wf)


def _pack_members(monkeypatch, capsys, *args: str) -> list[dict]:
    """The member configs ``firm-bench train-pack ARGS`` trains (the training itself stubbed out)."""
    from firm_bench.run import train as train_mod

    seen = []

    def fake(cfgs, run_dirs, **kwargs):
        seen.extend(cfgs)
        return []

    monkeypatch.setattr(train_mod, "train_pack", fake)
    assert main(["train-pack", *args, "--no-progress"]) == 0
    capsys.readouterr()
    return seen


def test_train_pack_names_each_members_recipe_by_its_overrides(monkeypatch, capsys, tmp_path):
    cfgs = _pack_members(monkeypatch, capsys, "--preset", "smoke", "--set", "optim.lr=0.2",
                         "--member", str(tmp_path / "a"), "seed=0", "optim.weight_decay=0.001",
                         "--member", str(tmp_path / "b"), "seed=1")
    assert [c["recipe"] for c in cfgs] == ["smoke+optim.lr=0.2+optim.weight_decay=0.001", "smoke+optim.lr=0.2"]
    named = _pack_members(monkeypatch, capsys, "--preset", "smoke", "--recipe", "mine", "--set", "optim.lr=0.2",
                          "--member", str(tmp_path / "a"), "seed=0")
    assert [c["recipe"] for c in named] == ["mine"]  # --recipe names it as given


def test_plan_runs_carry_recipe_names_firm_bench_train_accepts(tmp_path):
    """A planned run's config is named by the plan's recipe, a safe run directory level."""
    p = grid.plan(grid.load_workflow_config("mini"))
    for recipe in {r.recipe for r in p.runs}:
        run = next(r for r in p.runs if r.recipe == recipe)
        cfg = grid.run_config(p, run)
        assert cfg["recipe"] == recipe and Run.of_config(cfg) == run
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(grid.load_workflow_config("mini")))
    assert grid.plan(grid.load_workflow_config(path)).runs.keys() == p.runs.keys()


def test_where_the_data_lies_is_no_training_param_so_moving_it_reruns_nothing():
    """Snakemake reruns a job whose params changed: data_root, oe_path and a device are in the training
    commands (grid.local_args), not their params; run_config still has them."""
    wf = grid.load_workflow_config("mini")
    moved = {**wf, "data_root": "/elsewhere/data", "oe_path": "/elsewhere/oe.npy",
             "run_overrides": {**wf["run_overrides"], "device": "cpu"}}
    for size in (1, 4):
        p, q = grid.plan({**wf, "pack_runs": size}), grid.plan({**moved, "pack_runs": size})
        assert [grid.train_args(p, r) for r in sorted(p.runs)] == [grid.train_args(q, r) for r in sorted(q.runs)]
        assert [grid.pack_args(p, k) for k in grid.packs(p)] == [grid.pack_args(q, k) for k in grid.packs(q)]
        assert grid.local_args(p) == "" and "dataset.root" not in grid.train_args(q, next(iter(q.runs)))
    assert grid.local_args(q).split() == ["--set", "device=cpu", "--set", "dataset.root=/elsewhere/data",
                                          "--set", "outliers.oe_path=/elsewhere/oe.npy"]
    cfg = grid.run_config(q, next(iter(q.runs)))
    assert cfg["dataset"]["root"] == "/elsewhere/data" and cfg["device"] == "cpu"
