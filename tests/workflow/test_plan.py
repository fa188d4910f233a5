"""The paper grid: dry-run job counts per rule and per target, computed independently from the config."""

import re

import pytest
import yaml

from firm_bench.core.errors import ConfigError
from firm_bench.planning import grid as fw
from tests.helpers.snakemake import CONFIGS, job_stats, snakemake

# Written out here on purpose (not taken from the package): classes per dataset
# and the family of each score, as METHOD.md defines them.
N_CLASSES = {"cifar10": 10, "cifar100": 20, "fashion_mnist": 10, "fmnist_mini": 10,
             "cats_vs_dogs": 2, "mvtec": 15}
FAMILY = {
    **{s: "knn" for s in ["cos", "cos_norm", "rot", "rot_norm", "ens", "ens_norm"]},
    "center": "center", **{s: "kde" for s in ["kde", "kde_rot", "kde_ens"]},
    **{s: "ocsvm" for s in ["ocsvm", "ocsvm_rot", "ocsvm_ens"]},
    **{s: "locsvm" for s in ["locsvm", "locsvm_rot", "locsvm_ens"]},
}


def expected_jobs(cfg: dict, experiments: list[str]) -> dict[str, int]:
    runs, feature_jobs, score_jobs = set(), set(), set()
    for name in experiments:
        exp = cfg["experiments"][name]
        variants = exp.get("variants") or {"base": {}}
        # Table 4 (unlabeled multiclass): one run on the whole training set, scored per OOD set
        evalsets = [f"ood-{o}" for o in exp["ood"]] if exp.get("ood") else ["test"]
        for dataset in exp["datasets"]:
            if exp.get("ood"):
                cls_list = ["all"]
            elif exp.get("classes", "all") == "all":
                cls_list = range(N_CLASSES[dataset])
            else:
                cls_list = exp["classes"]
            for cls in cls_list:
                for loss in exp.get("losses", ["firm"]):
                    for outliers in exp.get("outliers", ["rot"]):
                        for variant in variants:
                            recipe = variant if variant == "base" else f"v-{variant}"
                            for seed in exp.get("seeds") or cfg.get("seeds", [0, 1, 2, 3, 4]):
                                run = (dataset, str(cls), loss, outliers, recipe, seed)
                                runs.add(run)
                                for evalset in evalsets:
                                    feature_jobs.add((run, evalset))
                                    for score in exp.get("scores", ["cos"]):
                                        score_jobs.add((run, evalset, FAMILY[score]))
    return {"train": len(runs), "features": len(feature_jobs), "score": len(score_jobs),
            "summarize_experiment": len(experiments), "table": len(experiments)}


def plan_job_counts(p: fw.Plan, experiments: list[str] | None = None) -> dict[str, int]:
    """Jobs per rule the plan ``p`` holds for ``experiments`` (default: all; pack_runs > 1: the packs as
    ``train_pack``)."""
    exps = list(p.experiments) if experiments is None else experiments
    runs = {r for e in exps for r in p.experiments[e]}
    evalsets = {(r, ev) for e in exps for r in p.experiments[e] for ev in p.experiment_evalsets(e)}
    scores = {(r, ev, f) for e in exps for r in p.experiments[e] for ev in p.experiment_evalsets(e)
              for f in p.experiment_families(e)}
    if int(p.config["pack_runs"]) > 1:
        trains = {"train_pack": sum(1 for pack in fw.packs(p) if set(pack.runs) & runs)}
    else:
        trains = {"train": len(runs)}
    return {**trains, "features": len(evalsets), "score": len(scores), "summarize_experiment": len(exps),
            "table": len(exps)}


@pytest.fixture(scope="module")
def paper():
    return yaml.safe_load((CONFIGS / "paper.yaml").read_text())


def test_plan_job_counts_match_an_independent_count(paper):
    plan = fw.plan(paper)
    assert plan_job_counts(plan) == expected_jobs(paper, list(paper["experiments"]))


def test_figure1_and_table4_scores_train_nothing_of_their_own(paper):
    """Figure 1's four datasets are Figure 4's / Table 5's runs; Table 4's extra scores are one k-NN job."""
    assert paper["experiments"]["fig1"]["datasets"] == ["cifar10", "cifar100", "fashion_mnist", "cats_vs_dogs"]
    full = plan_job_counts(fw.plan(paper))
    without_fig1 = {**paper, "experiments": {k: v for k, v in paper["experiments"].items() if k != "fig1"}}
    assert plan_job_counts(fw.plan(without_fig1))["train"] == full["train"]
    cos_only = {**paper, "experiments": {**paper["experiments"],
                                         "table4": {**paper["experiments"]["table4"], "scores": ["cos"]}}}
    assert plan_job_counts(fw.plan(cos_only)) == full


@pytest.mark.slow
def test_dry_run_of_the_whole_paper_grid(paper, tmp_path):
    out = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", CONFIGS / "paper.yaml").stdout
    stats = job_stats(out)
    expected = expected_jobs(paper, list(paper["experiments"]))
    assert {k: stats[k] for k in expected} == expected
    assert stats["summary"] == 1 and stats["all"] == 1
    # Table 1a and Table 13 share runs: the grid trains each run once
    assert stats["train"] < sum(expected_jobs(paper, [e])["train"] for e in paper["experiments"])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["table1a", "table4", "fig5"])
def test_one_table_target_plans_only_its_own_jobs(paper, tmp_path, target):
    out = snakemake(tmp_path, f"results/summary/{target}.md", "-n", "--quiet", "rules",
                    "--configfile", CONFIGS / "paper.yaml").stdout
    stats = job_stats(out)
    expected = expected_jobs(paper, [target])
    assert {k: stats.get(k, 0) for k in expected} == expected
    assert "summary" not in stats and "all" not in stats


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"losses": ["frim"]}, "unknown loss 'frim'; valid: ntxent, supcon, supcon_star, firm"),
        ({"datasets": ["imagenet21k"]}, "unknown dataset 'imagenet21k'"),
        ({"scores": ["cos", "mahalanobis"]}, "unknown score 'mahalanobis'"),
        ({"outliers": ["mixup"]}, "unknown outlier source 'mixup'"),
        ({"classes": [42]}, "class 42 is out of range for 'cifar10'"),
        ({"datasets": ["mvtec"], "classes": ["bottel"]}, "unknown class 'bottel' for 'mvtec'"),
        ({"variants": {"bad": {"optim.lrr": 1}}}, "allowed keys"),
    ],
)
def test_bad_experiments_fail_while_planning(paper, patch, message):
    cfg = {**paper, "experiments": {"table1a": {**paper["experiments"]["table1a"], **patch}}}
    with pytest.raises(ConfigError) as err:
        fw.plan(cfg)
    assert message in str(err.value)


@pytest.mark.slow
def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    cfg["experiments"]["smoke"]["losses"] = ["frim"]
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", bad, check=False)
    assert proc.returncode != 0
    assert "unknown loss 'frim'; valid: ntxent, supcon, supcon_star, firm" in proc.stdout + proc.stderr
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    cfg["gpu_per_job"] = "two"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", bad, check=False)
    assert proc.returncode != 0 and "gpu_per_job" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_every_shipped_config_plans():
    for path in CONFIGS.glob("*.yaml"):
        plan = fw.plan(yaml.safe_load(path.read_text()))
        assert plan.runs, path


def test_run_config_round_trip(paper):
    """The CLI arguments a train job gets resolve to the plan's run config."""
    plan = fw.plan(paper)
    run = next(r for r in plan.runs if r.recipe == "paper-tau0.5+loss.tau=0.5" and r.cls != "all")
    cfg = fw.run_config(plan, run)
    assert cfg["loss"]["tau"] == 0.5 and cfg["dataset"]["cls"] == int(run.cls) and cfg["seed"] == run.seed
    assert cfg["model"]["bn_momentum"] == 0.9 and cfg["recipe"] == "paper-tau0.5+loss.tau=0.5" and cfg["preset"] == "paper"
    args = fw.cli_args(plan, run)
    assert "--recipe paper-tau0.5+loss.tau=0.5" in args and "loss.tau=0.5" in args


# ---------------------------------------------------------------- packs (pack_runs)


def _member_configs(plan, pack):
    """Each member's config as `firm-bench train-pack` builds it from the pack's arguments."""
    import shlex

    from firm_bench.cli import build_parser
    from firm_bench.core import config

    args = build_parser().parse_args(["train-pack", *shlex.split(fw.pack_args(plan, pack))])
    cfgs = []
    for run_dir, *pairs in args.members:
        cfg = config.resolve(args.preset, None, [*args.overrides, *pairs])
        cfg["recipe"] = args.recipe
        cfgs.append((run_dir, cfg))
    return cfgs


def test_packs_hold_compatible_runs_of_the_same_experiments(paper):
    from firm_bench.core.packs import check_packable

    cfg = {**paper, "pack_runs": 8}
    plan = fw.plan(cfg)
    packs = fw.packs(plan)
    members = [r for p in packs for r in p.runs]
    assert sorted(members) == sorted(plan.runs) and len(set(members)) == len(members)  # every run once
    assert max(len(p.runs) for p in packs) == 8 and len(packs) < len(plan.runs) / 4
    assert len({p.name for p in packs}) == len(packs)
    for p in packs:
        assert len({frozenset(plan.runs[r].experiments) for r in p.runs}) == 1  # one target trains only its own
        assert len({(r.recipe, r.dataset) for r in p.runs}) == 1
    # a target's runs are whole packs
    for exp, runs in plan.experiments.items():
        wanted = set(runs)
        assert all(set(p.runs) <= wanted or not set(p.runs) & wanted for p in packs), exp
    # the arguments of a pack give every member its planned config, and the members may share a pack
    for p in packs[:: max(1, len(packs) // 12)]:
        built = _member_configs(plan, p)
        assert [d for d, _ in built] == [r.path(plan.config["runs_root"]) for r in p.runs]
        for (_, got), run in zip(built, p.runs):
            assert got == fw.run_config(plan, run)
        check_packable([c for _, c in built])
    assert fw.packs(fw.plan(paper)) and all(len(p.runs) == 1 for p in fw.packs(fw.plan(paper)))  # pack_runs: 1
    mini = fw.plan({**yaml.safe_load((CONFIGS / "mini.yaml").read_text()), "pack_runs": 4})
    for p in fw.packs(mini):  # the CPU miniature: every pack's members may share it
        check_packable([c for _, c in _member_configs(mini, p)])
    assert 2 <= max(len(p.runs) for p in fw.packs(mini)) <= 4


@pytest.mark.slow
def test_dry_run_of_packed_targets(paper, tmp_path):
    """pack_runs: 8: one job per pack, and one table target runs only the packs of its own runs."""
    path = tmp_path / "paper8.yaml"
    path.write_text(yaml.safe_dump({**paper, "pack_runs": 8}))
    plan = fw.plan({**paper, "pack_runs": 8})
    out = snakemake(tmp_path, "results/summary/table1a.md", "-n", "--quiet", "rules", "--configfile", path).stdout
    stats = job_stats(out)
    wanted = set(plan.experiments["table1a"])
    packs = [p for p in fw.packs(plan) if set(p.runs) & wanted]
    assert sum(v for k, v in stats.items() if k.startswith("train_pack_")) == len(packs) and "train" not in stats
    assert {k for k in stats if k.startswith("train_pack_")} == {p.name for p in packs}
    assert sum(len(p.runs) for p in packs) == len(wanted) == expected_jobs(paper, ["table1a"])["train"]
    assert stats["features"] == expected_jobs(paper, ["table1a"])["features"]
    assert plan_job_counts(plan, ["table1a"])["train_pack"] == len(packs)


def _planned_outputs(out: str, folder: str, suffix: str) -> set[str]:
    """The paper items whose ``folder/<item>.suffix`` a dry run plans (from its jobs' ``output:`` lines)."""
    return set(re.findall(rf"^\s*output: .*?\b{re.escape(folder)}/(\w+)\.{suffix}\b", out, flags=re.M))


@pytest.mark.slow
def test_the_default_target_renders_only_the_paper_items_an_experiment_feeds(tmp_path):
    """``all`` of the quickstart config renders the two items its experiment lists (Table 5, Figure 4) and Figure 2
    (drawn from the losses, no runs), not the 24 others that would read 'not run' everywhere; one of those as an explicit target is still rendered (alone: it
    trains nothing), and a fed table as a target trains only its own runs."""
    config = CONFIGS / "quickstart.yaml"
    items = yaml.safe_load(config.read_text())["experiments"]["quickstart"]["paper_items"]
    assert sorted(items) == ["fig4", "table5"]
    out = snakemake(tmp_path, "-n", "--configfile", config).stdout
    assert _planned_outputs(out, "results/tables", "md") == {"table5"}
    assert _planned_outputs(out, "figures", "png") == {"fig2", "fig4"}
    stats = job_stats(out)
    assert (stats["paper_table"], stats["paper_figure"], stats["report"], stats["claims"]) == (1, 2, 1, 1)
    assert stats["train"] == 6
    alone = job_stats(snakemake(tmp_path, "results/tables/table1a.md", "-n", "--quiet", "rules",
                                "--configfile", config).stdout)
    assert alone == {"paper_table": 1, "total": 1}
    fed = job_stats(snakemake(tmp_path, "results/tables/table5.md", "-n", "--quiet", "rules",
                              "--configfile", config).stdout)
    assert fed["train"] == 6 and fed["paper_table"] == 1 and "report" not in fed and "paper_figure" not in fed


def test_default_items_are_the_fed_ones_and_those_drawn_without_runs():
    """What ``snakemake`` alone renders: an item an experiment feeds, or one needing no runs; never an unfed one."""
    from firm_bench.core.facts import paper as paper_facts

    config = fw.validate_config(fw.load_workflow_config(CONFIGS / "quickstart.yaml"))
    feeders = fw.paper_item_feeders(config)
    default = fw.default_items(config)
    assert set(default) == {i for i, f in feeders.items() if f} | set(paper_facts.RUNLESS)
    assert "fig2" in default and "table1a" not in default and not feeders["fig2"]
    assert set(fw.default_items({"experiments": {}})) == set(paper_facts.RUNLESS)
