"""The run-directory layout (core.rundir): run ids, evaluation sets, score paths, atomic writes, status, curve."""

import math
import os
import re
import stat

import pytest

from firm_bench.core import rundir as runs
from firm_bench.core.rundir import Run


def _cfg(dataset="cifar10", cls=3, loss="firm", outliers="rot", seed=4, recipe=None, preset=None):
    cfg = {"dataset": {"name": dataset, "cls": cls}, "loss": {"name": loss}, "outliers": {"name": outliers},
           "seed": seed}
    if recipe is not None:
        cfg["recipe"] = recipe
    if preset is not None:
        cfg["preset"] = preset
    return cfg


# ------------------------------------------------------------------ Run ids


def test_run_id_is_the_six_parts_and_parses_back():
    run = Run("mvtec", "bottle", "supcon", "cutpaste_scar", "paper-tau0.1", 12)
    assert run.id == "mvtec/bottle/supcon/cutpaste_scar/paper-tau0.1/seed12"
    assert Run.parse(run.id) == run
    assert Run.parse(run.id).seed == 12 and isinstance(Run.parse(run.id).seed, int)
    assert run.path("/r/runs") == "/r/runs/mvtec/bottle/supcon/cutpaste_scar/paper-tau0.1/seed12"


def test_run_of_dir_reads_the_last_six_parts(tmp_path):
    run = Run("cifar10", "0", "ntxent", "none", "smoke", 0)
    deep = tmp_path / "a" / "b" / "results" / "runs"
    assert Run.of_dir(run.path(deep)) == run
    assert Run.of_dir(deep / run.id) == run  # a Path as well as a str
    with pytest.raises(ValueError, match=re.escape("'cifar10/0/seed0'")):
        Run.of_dir("cifar10/0/seed0")  # too few parts: the path is named


@pytest.mark.parametrize("bad", [
    "cifar10/3/firm/rot/paper",             # five parts
    "cifar10/3/firm/rot/paper/4",           # no seed prefix
    "cifar10/3/firm/rot/paper/seedx",       # seed not a number
    "cifar10/3/firm/rot/paper/seed",        # empty seed
    "cifar10/3/firm/rot/paper/seed1/extra",  # seven parts
    "cifar10/3/firm/rot/paper/seed-1",      # negative seed
])
def test_bad_run_ids_are_named_in_the_error(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        Run.parse(bad)


def test_run_of_config_uses_recipe_then_preset_and_strings_the_class():
    run = Run.of_config(_cfg(recipe="paper-bn0.1", preset="paper"))
    assert run == Run("cifar10", "3", "firm", "rot", "paper-bn0.1", 4)
    assert run.cls == "3" and isinstance(run.cls, str)  # an int class id is a directory name
    assert Run.of_config(_cfg(recipe=None, preset="paper")).recipe == "paper"  # recipe: null (not yet validated)
    assert Run.of_config(_cfg(preset="mini")).recipe == "mini"
    assert Run.of_config(_cfg()).recipe == "none"
    # round trip: config -> id -> run
    assert Run.parse(Run.of_config(_cfg(recipe="x")).id) == Run.of_config(_cfg(recipe="x"))


def test_run_dir_for_uses_recipe_then_preset(tmp_path):
    assert runs.run_dir_for(_cfg(recipe="paper-tau0.5", preset="paper"), tmp_path) == \
        tmp_path / "cifar10" / "3" / "firm" / "rot" / "paper-tau0.5" / "seed4"
    assert runs.run_dir_for(_cfg(preset="smoke", seed=0)) == \
        runs.Path("results/runs/cifar10/3/firm/rot/smoke/seed0")


# ------------------------------------------------------------------ evaluation sets and score files


def test_evalset_of_and_ood_of_are_inverse():
    assert runs.evalset_of(None) == "test"
    assert runs.evalset_of("svhn") == "ood-svhn"
    assert runs.ood_of("test") is None
    assert runs.ood_of("ood-lsun_fix") == "lsun_fix"
    for ood in (None, "svhn", "imagenet_resize", "cifar100"):
        assert runs.ood_of(runs.evalset_of(ood)) == ood
    with pytest.raises(ValueError, match="'train'"):
        runs.ood_of("train")


@pytest.mark.parametrize("name, ok", [
    ("test", True), ("ood-svhn", True), ("ood-lsun_fix", True), ("ood-cifar100", True),
    ("ood-", False), ("ood-SVHN", False), ("train", False), ("oodsvhn", False), ("test2", False),
    ("ood-svhn/x", False), ("ood-lsun-fix", False),
])
def test_evalset_pattern_matches_exactly_the_evaluation_sets(name, ok):
    assert bool(re.fullmatch(runs.EVALSET_PATTERN, name)) == ok


def test_score_key_and_path():
    assert runs.score_key("cos", 5) == "cos_k5"
    assert runs.score_key("rot_norm", 1) == "rot_norm_k1"
    assert runs.score_key("center", None) == "center"
    assert runs.score_path("r", "test", "ens", 10) == runs.Path("r/scores/test/ens_k10.json")
    assert runs.score_path("r", "ood-svhn", "kde", None) == runs.Path("r/scores/ood-svhn/kde.json")


def test_cache_and_meta_paths():
    assert runs.cache_path("r") == runs.Path("r/features/test/cache.pt")
    assert runs.cache_path("r", "ood-svhn", "untrained") == runs.Path("r/features/ood-svhn/untrained/cache.pt")
    assert runs.meta_path("r", "ood-svhn") == runs.Path("r/features/ood-svhn/meta.json")
    with pytest.raises(ValueError, match="'best'"):
        runs.cache_path("r", model="best")


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_leaves_no_temp_file_and_is_readable_by_others(tmp_path):
    path = tmp_path / "deep" / "dir" / "x.json"  # parents are created
    runs.atomic_write_json(path, {"a": 1, "p": runs.Path("q")})
    assert runs.read_json(path) == {"a": 1, "p": "q"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_atomic_write_keeps_the_previous_file_when_the_writer_raises(tmp_path):
    path = tmp_path / "metrics.json"
    runs.atomic_write_text(path, "old\n")

    def half_then_fail(fh):
        fh.write(b"half a fi")
        raise KeyboardInterrupt  # an interrupt too, not only an Exception

    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    # a first write that fails leaves nothing at all
    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(tmp_path / "new.json", half_then_fail)
    assert not (tmp_path / "new.json").exists() and len(list(tmp_path.iterdir())) == 1


def test_atomic_write_json_rejects_unserialisable_values_and_keeps_the_file(tmp_path):
    path = tmp_path / "x.json"
    runs.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError, match="object"):
        runs.atomic_write_json(path, {"a": object()})
    assert runs.read_json(path) == {"a": 1} and len(list(tmp_path.iterdir())) == 1


# ------------------------------------------------------------------ status


def test_write_status_rejects_unknown_states(tmp_path):
    for bad in ("done", "OK", "", "finished"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            runs.write_status(tmp_path, bad)
    assert runs.read_status(tmp_path) is None  # nothing written


def test_status_round_trip(tmp_path):
    runs.write_status(tmp_path, "failed", reason="non-finite loss at epoch 3", epoch=3)
    status = runs.read_status(tmp_path)
    assert status["state"] == "failed" and status["reason"] == "non-finite loss at epoch 3" and status["epoch"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", status["time"])
    runs.write_status(tmp_path, "ok")
    assert runs.read_status(tmp_path)["state"] == "ok" and "reason" not in runs.read_status(tmp_path)


# ------------------------------------------------------------------ learning curve


def _rows(select=False):
    rows = [{"epoch": 0, "auroc": 0.61, "loss": float("nan"), "lr": 0.0, "elapsed_s": 0.0},
            {"epoch": 5, "auroc": 0.7234567890123, "loss": 5.25, "lr": 0.05, "elapsed_s": 1.5},
            {"epoch": 10, "auroc": 0.8, "loss": 4.125, "lr": 1e-5, "elapsed_s": 3.25}]
    if select:
        for row, value in zip(rows, (0.6, 0.75, 0.7)):
            row["select_auroc"] = value
    return rows


@pytest.mark.parametrize("select", [False, True])
def test_curve_round_trip(tmp_path, select):
    rows = _rows(select)
    runs.write_curve(tmp_path, rows)
    header = (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert header == "epoch,auroc,loss,lr,elapsed_s" + (",select_auroc" if select else "")
    back = runs.read_curve(tmp_path)
    assert len(back) == 3 and [r["epoch"] for r in back] == [0, 5, 10]
    assert all(type(r["epoch"]) is int for r in back)
    assert math.isnan(back[0]["loss"])  # epoch 0: the untrained model has no training loss
    for want, got in zip(rows, back):
        assert set(got) == set(want)
        for key in want:
            if key != "loss" or want["epoch"] > 0:
                assert got[key] == want[key] and isinstance(got[key], (int, float))
    assert not [p for p in tmp_path.iterdir() if p.name != "curve.csv"]


def test_read_curve_of_a_run_without_curve_is_empty(tmp_path):
    assert runs.read_curve(tmp_path) == []


# ------------------------------------------------------------------ path-safe names, unusable run directories


@pytest.mark.parametrize("recipe, problem", [
    ("../../evil", "contains '..' or '/'"),
    ("a/b", "contains '..' or '/'"),
    ("..", "contains '..' or '/'"),
    ("r" * 300, "is 300 characters long (at most 128)"),
    ("my recipe", "is not a safe directory name (it has ' ')"),
    ("-rf", "is not a safe directory name"),
    (".hidden", "is not a safe directory name"),
])
def test_a_recipe_that_is_not_a_safe_directory_name_is_refused_naming_it(recipe, problem, tmp_path, capsys):
    from firm_bench.cli import main
    from firm_bench.core import config
    from firm_bench.core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(problem)):
        config.resolve("smoke", overrides=[f"recipe={recipe}"])
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Run("cifar10", "3", "firm", "rot", recipe, 0)
    assert main(["train", "--preset", "smoke", f"--recipe={recipe}", "--runs-root", str(tmp_path / "runs"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"recipe {(recipe if len(recipe) <= 60 else recipe[:57] + '...')!r} {problem}" in err
    assert "choose another name (--recipe NAME" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*")), "nothing may be written for a refused name"


def test_recipe_names_made_from_overrides_and_workflow_variants_are_safe(tmp_path):
    """The names firm-bench makes itself pass the rule; a workflow variant named with '..' is refused."""
    import yaml

    from firm_bench.core import config
    from firm_bench.core.errors import ConfigError
    from firm_bench.planning.grid import load_workflow_config, plan

    for over in (["optim.lr=0.2", "loss.tau=0.5"], ["optim.lr=1e-3"], ["features.angles=[0,90]"]):
        cfg = config.resolve("smoke", overrides=over, name_recipe=True)
        assert runs.check_name("recipe", cfg["recipe"]) == cfg["recipe"]
    p = plan(load_workflow_config("mini"))  # the bundled grid: every run named by the rule
    assert p.run_dirs(p.experiments and next(iter(p.experiments)))
    wf = load_workflow_config("mini")
    exp = next(e for e in wf["experiments"].values() if e.get("variants"))
    exp["variants"] = {"../../escape": {"loss.tau": 0.5}}
    bad = tmp_path / "wf.yaml"
    bad.write_text(yaml.safe_dump(wf))
    with pytest.raises(ConfigError, match=re.escape("contains '..' or '/'")):
        plan(load_workflow_config(bad))


@pytest.mark.parametrize("seed", [2 ** 64, 2 ** 64 - 1, 2 ** 32])
def test_a_seed_past_32_bits_is_refused_by_its_key(seed):
    from firm_bench.core import config
    from firm_bench.core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(f"seed: {seed} is greater than the maximum of 4294967295")):
        config.resolve("smoke", overrides=[f"seed={seed}"])
    assert config.resolve("smoke", overrides=[f"seed={2 ** 32 - 1}"])["seed"] == 2 ** 32 - 1


def test_a_run_dir_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    from firm_bench.cli import main

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run\n")
    for run_dir, where in ((a_file, "it is a file"), (a_file / "sub", f"{a_file} is a file")):
        assert main(["train", "--preset", "smoke", "--set", "device=cpu", "--run-dir", str(run_dir),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"run directory {run_dir}: {where}, not a directory; give a directory" in err, err
        assert "Traceback" not in err
    for command in ("features", "score", "metrics"):
        assert main([command, str(a_file)]) == 2
        assert f"run directory {a_file}: it is a file, not a directory" in capsys.readouterr().err
    assert a_file.read_text() == "not a run\n"


def test_a_read_only_run_directory_gives_one_line(tmp_path, monkeypatch):
    """A refused write inside the run directory (read-only directory or file system) names it and what to do;
    one outside it (the dataset's, say) is left as it is."""
    import errno

    from firm_bench.core import lock as locks
    from firm_bench.core.errors import USER_ERRORS, RunDirUnusable

    run = tmp_path / "run"
    run.mkdir()
    real = locks.hold

    def read_only(lock_file, **kw):
        raise PermissionError(errno.EROFS, "Read-only file system", str(lock_file))

    monkeypatch.setattr(locks, "hold", read_only)
    with pytest.raises(RunDirUnusable) as info, runs.writing(run, "train"):
        pass
    assert str(info.value) == (f"run directory {run} cannot be written (Read-only file system: {run / '.lock'}); "
                               f"give a writable run directory (--run-dir), or make it writable (`chmod -R u+w {run}`, "
                               "or remount its file system read-write)")
    assert RunDirUnusable in USER_ERRORS
    monkeypatch.setattr(locks, "hold", real)
    with pytest.raises(RunDirUnusable, match="cannot be written .Permission denied"), runs.writing(run, "train"):
        raise PermissionError(errno.EACCES, "Permission denied", str(run / "checkpoints" / "last.pt"))
    with pytest.raises(PermissionError), runs.writing(run, "train"):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "data" / "x.png"))
    if os.geteuid() != 0:  # a real read-only directory (root writes anyway)
        os.chmod(run, 0o555)
        try:
            with pytest.raises(RunDirUnusable, match="cannot be written"), runs.writing(run, "train"):
                runs.atomic_write_json(run / "x.json", {})
        finally:
            os.chmod(run, 0o755)
