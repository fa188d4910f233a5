"""firm_bench.paper.claims: the statistics against hand computations and scipy, the claims file against the
paper config's plan and the reported numbers, verdicts on synthetic summaries, the rendering and the command."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from firm_bench.cli import main as cli_main
from firm_bench.core.config import recipe_variant
from firm_bench.core.facts.datasets import dataset as dataset_facts
from firm_bench.paper import claims as C
from firm_bench.paper import reported as rep
from firm_bench.planning import grid
from firm_bench.records import summary as S
from tests.helpers.claims import claims_doc, curves, effect_value, order, plan_results, rows, vs_reported

FAST = dict(n_resamples=2000)


def by_id(results):
    return {r.claim.id: r for r in results}


# --------------------------------------------------------------------------- #
# statistics against hand computations and scipy
# --------------------------------------------------------------------------- #
def test_paired_t_interval_matches_hand_computation_and_scipy():
    d = np.array([1.0, 2.0, 3.0, 4.0])
    mean, lo, hi = C.paired_t_interval(d)
    # by hand: mean 2.5, s = sqrt(5/3) = 1.2909944, t(0.975, 3) = 3.1824463, half = t s / 2 = 2.0542603
    assert mean == pytest.approx(2.5)
    assert (lo, hi) == pytest.approx((2.5 - 2.0542603, 2.5 + 2.0542603), abs=1e-6)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_ratio_interval_is_the_delta_method_of_the_ratio_of_paired_means():
    rng = np.random.default_rng(1)
    b = rng.normal(90, 3, size=25)
    a = b * 1.02 + rng.normal(0, 0.5, size=25)
    r, lo, hi = C.ratio_t_interval(a, b)
    # independent: gradient of f(ma, mb) = ma / mb and the sample covariance of the paired means
    ma, mb = a.mean(), b.mean()
    grad = np.array([1 / mb, -ma / mb ** 2])
    var = grad @ np.cov(np.vstack([a, b]), ddof=1) @ grad / a.size
    half = stats.t.ppf(0.975, a.size - 1) * math.sqrt(var)
    assert r == pytest.approx((ma / mb - 1) * 100)
    assert (lo, hi) == pytest.approx(((ma / mb - half - 1) * 100, (ma / mb + half - 1) * 100))


def test_bootstrap_is_reproducible_with_its_seed_and_close_to_t_on_normal_data():
    rng = np.random.default_rng(2)
    d = rng.normal(1.0, 2.0, size=200)
    first = C.bootstrap_interval(d, seed=0)
    assert first == C.bootstrap_interval(d, seed=0)
    assert first != C.bootstrap_interval(d, seed=1)
    _, lo, hi = C.paired_t_interval(d)
    width = hi - lo
    assert first[0] == pytest.approx(lo, abs=0.1 * width)
    assert first[1] == pytest.approx(hi, abs=0.1 * width)
    ref = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(5))
    assert first[0] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert first[1] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_bootstrap_resamples_the_pairs_together_for_a_relative_effect():
    a = np.array([95.0, 96.0, 97.0, 98.0])
    b = a - 1.0  # a constant offset: every resample has the same difference, not the same ratio
    lo, hi = C.bootstrap_interval(a, b, effect="difference")
    assert lo == hi == pytest.approx(1.0)
    lo, hi = C.bootstrap_interval(a, b, effect="relative")
    ratios = (a / b - 1) * 100
    assert ratios.min() - 1e-9 <= lo <= hi <= ratios.max() + 1e-9


def test_holm_on_a_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06
    adj = C.holm([0.01, 0.04, 0.03, 0.005, math.nan])
    assert adj[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adj[4])  # no test: not in the family


def _slow_holm(ps):
    """Reference: Holm's step-down written out (sort, multiply by the hypotheses left, keep monotone)."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def test_holm_matches_a_slow_reference_and_statsmodels():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, size=30)
    assert C.holm(p) == pytest.approx(_slow_holm(list(p)))
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    assert C.holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])


def _slow_sign_flip(d, boundary, alternative):
    """Reference: loop over every sign pattern, count the means at least as extreme as the observed one."""
    x = [v - boundary for v in d]
    obs = sum(x) / len(x)
    hits = total = 0
    for pattern in range(2 ** len(x)):
        m = sum(v if (pattern >> i) & 1 == 0 else -v for i, v in enumerate(x)) / len(x)
        total += 1
        hits += (m >= obs - 1e-12) if alternative == "greater" else (m <= obs + 1e-12)
    return hits / total


def test_one_sided_tests_are_scipys_paired_t_and_an_enumerated_sign_flip():
    rng = np.random.default_rng(4)
    b = rng.normal(90, 2, size=12)
    a = b + rng.normal(0.4, 0.5, size=12)
    s = C.effect_stats(a, b, alternative="greater", **FAST)
    assert s.p_t == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert s.p_t_against == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue)
    assert s.p_for == s.p_t and s.p_against == s.p_t_against  # the verdict's test is the t test, always
    assert s.p_flip == pytest.approx(_slow_sign_flip(a - b, 0.0, "greater"))
    assert s.p_flip_against == pytest.approx(_slow_sign_flip(a - b, 0.0, "less"))
    # a margin shifts the boundary: "a does not exceed b by more than 0.5"
    s = C.effect_stats(a, b, alternative="less", boundary=0.5, **FAST)
    assert s.p_t == pytest.approx(stats.ttest_1samp(a - b, 0.5, alternative="less").pvalue)
    assert s.p_flip == pytest.approx(_slow_sign_flip(a - b, 0.5, "less"))


def test_the_sign_flip_p_is_exact_for_small_n_and_sampled_beyond():
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # all positive: only the observed pattern reaches its mean
    assert C.sign_flip_p(d, 0.0, "greater") == pytest.approx(1 / 32)
    assert C.sign_flip_p(d, 0.0, "less") == pytest.approx(1.0)
    d = np.array([1.0, -1.0, 2.0, 0.5])  # ties of |x| and a zero mean of flipped patterns are counted in
    assert C.sign_flip_p(d, 0.0, "greater") == pytest.approx(_slow_sign_flip(d, 0.0, "greater"))
    rng = np.random.default_rng(9)
    big = rng.normal(0.3, 1, size=C.EXACT_FLIPS + 4)
    sampled = C.sign_flip_p(big, 0.0, "greater")
    assert sampled == C.sign_flip_p(big, 0.0, "greater")  # seeded
    assert sampled == pytest.approx(_slow_sign_flip(big, 0.0, "greater"), abs=0.01)


def test_the_within_seed_correlation_is_the_two_way_intraclass_correlation():
    rng = np.random.default_rng(10)
    seed_effect = rng.normal(0, 1.0, size=(1, 40))
    d = seed_effect + rng.normal(0, 0.5, size=(10, 40)) + rng.normal(0, 2, size=(10, 1))  # + class effects
    # reference: the two-way ANOVA mean squares written out, and the correlation they estimate (1 / 1.25)
    c, s = d.shape
    ms_seed = c * np.var(d.mean(axis=0), ddof=1)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    ms_err = (resid ** 2).sum() / ((c - 1) * (s - 1))
    assert C.within_seed_correlation(d) == pytest.approx((ms_seed - ms_err) / (ms_seed + (c - 1) * ms_err))
    assert C.within_seed_correlation(d) == pytest.approx(1 / 1.25, abs=0.1)
    assert abs(C.within_seed_correlation(rng.normal(size=(10, 40)))) < 0.1
    assert math.isnan(C.within_seed_correlation(d[:1]))


def test_a_known_effect_is_found_and_a_null_effect_is_not():
    rng = np.random.default_rng(5)
    b = rng.normal(90, 3, size=50)
    found = C.effect_stats(b + 1.0 + rng.normal(0, 0.5, 50), b, **FAST)
    assert found.estimate == pytest.approx(1.0, abs=0.2) and found.p_for < 1e-10
    assert found.ci[0] > 0
    null = C.effect_stats(b + rng.normal(0, 0.5, 50), b, **FAST)
    assert null.p_for > 0.05 and null.ci[0] < 0 < null.ci[1]


def test_pairing_beats_an_unpaired_comparison_when_classes_differ():
    """Shared class difficulty (sd 5 points) hides a 0.5-point effect from Welch's test; pairing removes it."""
    rng = np.random.default_rng(6)
    difficulty = rng.normal(85, 5, size=20)
    b = difficulty + rng.normal(0, 0.3, 20)
    a = difficulty + 0.5 + rng.normal(0, 0.3, 20)
    paired = C.effect_stats(a, b, **FAST)
    unpaired = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert paired.p_for < 1e-4 < 0.05 < unpaired.pvalue
    welch = unpaired.confidence_interval(0.95)
    assert paired.t_high - paired.t_low < (welch.high - welch.low) / 5 if math.isfinite(welch.high) else True


def test_skewed_differences_keep_the_t_test_and_the_t_interval():
    """No normality pretest: the verdict's test and interval are of the mean whatever the shape of the data."""
    skewed = np.array([0.1] * 9 + [8.0]) + np.linspace(0, 0.01, 10)
    s = C.effect_stats(skewed, np.zeros(10), **FAST)
    assert s.p_for == pytest.approx(stats.ttest_1samp(skewed, 0.0, alternative="greater").pvalue)
    ci = stats.ttest_1samp(skewed, 0.0).confidence_interval(0.95)
    assert s.ci == pytest.approx((ci.low, ci.high))


def test_identical_differences_decide_by_their_sign():
    s = C.effect_stats(np.full(5, 2.0), np.ones(5), **FAST)
    assert s.p_t == 0.0 and s.p_t_against == 1.0 and s.estimate == 1.0
    s = C.effect_stats(np.ones(5), np.ones(5), **FAST)
    assert s.p_t == 0.5 and s.p_t_against == 0.5


# --------------------------------------------------------------------------- #
# the packaged claims file
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def claims():
    return C.load_claims()


@pytest.fixture(scope="module")
def reported():
    return rep.load_reported()


def test_the_claims_files_defaults_are_the_modules():
    doc = yaml.safe_load(C.CLAIMS_PATH.read_text())
    assert doc["defaults"] == dict(C.SIDE_DEFAULTS)


def test_the_claims_file_validates_and_covers_the_papers_sections(claims):
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids)) > 150
    groups = {c.group for c in claims}
    for part in ("Table 5", "Figures 1 and 4", "Table 1", "Outlier exposure", "MVTec", "Table 4", "Score functions",
                 "Temperature and batch size", "learn"):
        assert any(part in g for g in groups), part
    for c in claims:
        assert c.quote and c.source and c.direction in C.DIRECTIONS
    learns = [c for c in claims if c.kind == "learns"]
    assert learns and all(c.b.baseline == C.UNTRAINED and c.a == dataclasses.replace(c.b, baseline=None)
                          for c in learns)


def _planned_runs(plan, side: C.Side):
    recipes = {r for r in plan.variants if recipe_variant(r) == side.variant}  # the variant's recipe (config.recipe_name)
    assert len(recipes) == 1, (side.variant, sorted(plan.variants))
    if side.evalset != ("test",):
        classes = ["all"]
    elif side.cls == "all":
        entry = dataset_facts(side.dataset)
        classes = [str(entry.class_id(i)) for i in range(len(entry.classes))]
    else:
        classes = list(side.cls)
    return classes, [r for r in plan.runs if r.dataset == side.dataset and r.loss == side.loss
                     and r.outliers in side.outliers and r.recipe in recipes and r.cls in classes]


def test_every_claim_compares_cells_the_paper_config_plans(claims):
    plan = grid.plan(grid.load_workflow_config("paper"))
    for c in claims:
        for role, side in c.sides().items():
            classes, runs = _planned_runs(plan, side)
            where = f"{c.id} side {role} ({side.describe()})"
            assert runs, f"{where}: no planned run"
            for cls in classes:
                for outliers in side.outliers:
                    assert any(r.cls == cls and r.outliers == outliers for r in runs), \
                        f"{where}: class {cls} {outliers}"
            assert len({r.seed for r in runs}) >= C.MIN_PAIRS, where
            if C.STATISTICS[c.statistic].source == "summary":
                for r in runs:
                    needs = plan.runs[r]
                    if c.statistic == "auroc":
                        assert side.score in needs.scores, f"{where}: score {side.score} not planned for {r.id}"
                        if side.k is not None:
                            assert side.k in needs.ks, f"{where}: k={side.k} not planned for {r.id}"
                    wanted = {"test"} if side.evalset == ("test",) else {f"ood-{e}" for e in side.evalset}
                    assert wanted <= needs.evalsets, f"{where}: {wanted - needs.evalsets} not planned for {r.id}"


def test_every_cited_reported_number_exists(claims, reported):
    for c in claims:
        effect, numbers = C.paper_effect(c, reported)  # raises KeyError naming the cell when it is absent
        if c.paper is not None:
            assert math.isfinite(effect) and {"a", "b"} <= set(numbers), c.id
        if c.b.reported is not None:
            assert math.isfinite(numbers["b"]), c.id
        if c.stated is not None:
            assert math.isfinite(C.stated_size(c, reported)), c.id


def test_cited_numbers_are_the_papers(claims, reported):
    got = {c.id: C.paper_effect(c, reported) for c in claims}
    assert got["t5.firm_gt_ntxent.auroc.cifar10"][1] == {"a": 93.4, "b": 92.2}
    assert got["t1.firm_gt_droc.cifar10"][1] == {"a": 93.4, "b": 92.5}  # FIRM cos vs DROC, Table 1a
    assert got["t2.firm_gt_supcon.screw"][0] == pytest.approx(96.7 - 39.8)
    assert got["t4.firm_gt_csi.lsun_fix"][1] == {"a": 95.8, "b": 90.3}
    assert got["t10b.oe_widens_gain"][0] == pytest.approx((97.4 - 91.7) - (93.4 - 92.2))
    carpet = got["t2.carpet_collapse.firm"][1]
    others = rep.paper_rows(reported, "2")
    others = others[(others["loss"] == "firm") & ~others["cls"].isin(["carpet", "mean"])]
    assert carpet["a"] == 75.2 and carpet["b"] == pytest.approx(others["value_pct"].mean())
    stated = {c.id: C.stated_size(c, reported) for c in claims if c.stated is not None}
    assert stated["t2.firm_gt_ntxent.mvtec"] == 5.0 and stated["t5.firm_gt_ntxent.aulc.cats_vs_dogs"] == 7.9


@pytest.mark.parametrize("change, key", [
    ({"a": {"dataset": "cifar10", "loss": "frim"}}, "a.loss"),
    ({"direction": "=>"}, "direction"),
    ({"direction": "<="}, "margin"),
    ({"statistic": "auc"}, "statistic"),
    ({"a": {"dataset": "cifar10", "loss": "firm", "cls": [12]}}, "a.cls"),
    ({"b": {"dataset": "cifar10", "loss": "ntxent", "cls": [1]}}, "cls"),
    ({"b": {"value": 90.0}}, "b.why"),
    ({"stated": {"value": 1.0, "unit": "relative_pct"}}, "stated.unit"),
    ({"untrained": ["c"]}, "untrained"),
    ({"colour": "red"}, None),
])
def test_a_bad_claim_is_named_with_its_key(change, key):
    entry = yaml.safe_load(order(id="bad.claim"))[0]
    entry.update(change)
    with pytest.raises(C.ClaimsError) as err:
        C.parse_claims({"claims": [entry]}, "x.yaml")
    assert "x.yaml" in str(err.value) and "bad.claim" in str(err.value)
    if key:
        assert f"key {key!r}" in str(err.value)


def test_each_expands_combinations_and_instances():
    entry = yaml.safe_load(order(id="c.{a}.{dataset}", a='"{a}"', dataset='"{dataset}"'))[0]
    entry["each"] = {"a": ["firm", "supcon"], "dataset": ["cifar10", "cifar100"]}
    got = C.parse_claims({"claims": [entry]}, with_untrained=False)
    assert [c.id for c in got] == ["c.firm.cifar10", "c.firm.cifar100", "c.supcon.cifar10", "c.supcon.cifar100"]
    assert got[3].a.loss == "supcon" and got[3].a.dataset == "cifar100"
    entry["each"] = [{"a": "firm", "dataset": "mvtec"}]
    assert [c.id for c in C.parse_claims({"claims": [entry]}, with_untrained=False)] == ["c.firm.mvtec"]


# --------------------------------------------------------------------------- #
# verdicts on synthetic summaries
# --------------------------------------------------------------------------- #
def test_supported_contradicted_and_not_significant_with_holm():
    claims = claims_doc(order("up", "firm", "ntxent", ">"), order("down", "firm", "supcon", ">"),
                        order("nil", "firm", "supcon_star", ">"))
    value = effect_value({"firm": 0.01, "ntxent": 0.0, "supcon": 0.02, "supcon_star": 0.01})
    res = by_id(C.evaluate_claims(rows(losses=("firm", "ntxent", "supcon", "supcon_star"), value=value), None,
                                  claims, **FAST))
    assert res["up"].verdict == "supported" and res["up"].stats.estimate == pytest.approx(1.0, abs=0.2)
    assert res["down"].verdict == "contradicted" and res["down"].stats.estimate < 0
    assert res["nil"].verdict == "not significant"
    # n = seeds (each the mean over the 10 classes), 50 cells; one Holm family over both directions
    assert all(r.n_pairs == 5 and r.n_cells == 50 and r.family == "paper" and r.family_size == 3
               for r in res.values())
    ids = ("up", "down", "nil")
    raw = [res[i].stats.p_for for i in ids] + [res[i].stats.p_against for i in ids]
    adj = _slow_holm(raw)
    assert [res[i].p_holm for i in ids] == pytest.approx(adj[:3])
    assert [res[i].p_holm_against for i in ids] == pytest.approx(adj[3:])
    # our effect and test are the paired ones on per-seed class means of firm - ntxent, in points
    df = rows(losses=("firm", "ntxent", "supcon", "supcon_star"), value=value)
    per_seed = df.pivot_table(index="seed", columns="loss", values="auroc", aggfunc="mean") * 100
    d = per_seed["firm"] - per_seed["ntxent"]
    assert res["up"].stats.estimate == pytest.approx(d.mean())
    assert res["up"].stats.p_for == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def test_a_claim_without_runs_is_not_run_naming_the_side():
    claims = claims_doc(order("c", "firm", "supcon"))
    res = C.evaluate_claims(rows(losses=("firm",)), None, claims, **FAST)[0]
    assert res.verdict == "not run" and "side b" in res.detail and "supcon" in res.detail
    assert C.evaluate_claims(rows(losses=("firm",)), None, claims, partial=True, **FAST)[0].verdict == "pending"


def test_failed_runs_are_counted_and_too_few_pairs_give_no_verdict():
    claims = claims_doc(order("c"))
    good = rows(classes=[0], seeds=[0, 1], value=effect_value({"firm": 0.05}))
    failed = rows(classes=[1], seeds=[0, 1], losses=("ntxent",), status="failed")
    res = C.evaluate_claims(pd.concat([good, failed, rows(classes=[1], seeds=[0, 1], losses=("firm",))]), None,
                            claims, **FAST)[0]
    # class 1 failed for ntxent: the per-seed means rest on class 0 alone, over 2 seeds (a verdict needs 2)
    assert res.n_pairs == 2 and res.n_units == 2 and res.n_cells == 2 and res.n_classes == 1
    assert "failed" in res.detail and res.coverage == "classes 1/10; seeds 2/5 (0,1)"
    one = C.evaluate_claims(pd.concat([good[good["seed"] == 0], failed]), None, claims, **FAST)[0]
    assert one.verdict == "too few" and one.n_pairs == 1 and f"at least {C.MIN_PAIRS}" in one.detail
    res = one
    assert math.isnan(res.p_holm)  # not in the Holm family


def test_partial_results_read_pending():
    claims = claims_doc(order("c"))
    missing = rows(status="missing")
    assert C.evaluate_claims(missing, None, claims, **FAST)[0].verdict == "not run"
    res = C.evaluate_claims(missing, None, claims, partial=True, **FAST)[0]
    assert res.verdict == "pending" and "pending" in res.detail


def test_a_stand_in_dataset_is_marked_and_is_its_own_holm_family():
    claims = claims_doc(order("real"), order("mini", dataset="fashion_mnist"))
    value = effect_value({"firm": 0.01})
    df = pd.concat([rows(value=value), rows(dataset="fmnist_mini", classes=[0, 1], seeds=[0, 1], recipe="mini",
                                            value=value)])
    res = by_id(C.evaluate_claims(df, None, claims, **FAST))
    assert res["mini"].stand_in and res["mini"].stand_in_of == "fmnist_mini for fashion_mnist"
    assert res["mini"].family == "stand-in" and res["mini"].family_size == 1
    assert res["real"].family == "paper" and res["real"].family_size == 1 and not res["real"].stand_in
    # the stand-in did not enlarge its family: two hypotheses (both directions of the one claim)
    assert res["real"].p_holm == pytest.approx(min(1.0, 2 * res["real"].stats.p_for))
    md = C.claims_markdown(list(res.values()))
    assert C.STAND_IN_LABEL in md


def test_a_relative_effect_is_the_ratio_of_the_means():
    entry = order("rel").replace("effect: difference", "effect: relative")
    value = effect_value({"firm": 0.02})
    df = rows(value=value)
    res = C.evaluate_claims(df, None, claims_doc(entry), **FAST)[0]
    means = df.groupby("loss")["auroc"].mean()
    assert res.stats.estimate == pytest.approx((means["firm"] / means["ntxent"] - 1) * 100)
    assert res.verdict == "supported" and res.claim.unit == "relative_pct"


def test_vs_reported_compares_per_seed_class_means_with_the_printed_number():
    entry = vs_reported()
    df = rows(losses=("firm",), value=effect_value({"firm": 0.08}))
    res = C.evaluate_claims(df, None, claims_doc(entry), **FAST)[0]
    per_seed = df.groupby("seed")["auroc"].mean() * 100
    assert res.n_pairs == 5 and res.stats.estimate == pytest.approx(per_seed.mean() - 92.5)
    assert res.paper_effect == pytest.approx(93.4 - 92.5)


def test_means_over_different_classes_pair_by_seed_and_generator():
    entry = """
    - id: carpet
      group: g
      kind: collapse
      quote: q
      source: s
      statistic: auroc
      effect: difference
      a: {dataset: mvtec, cls: [carpet], loss: firm, outliers: [ref_cutpaste_scar, ref_nsa], mean_over: cls}
      b: {dataset: mvtec, cls: [bottle, cable], loss: firm, outliers: [ref_cutpaste_scar, ref_nsa], mean_over: cls}
      direction: "<"
    """
    auroc = {"carpet": 0.7, "bottle": 0.95, "cable": 0.91, "grid": 0.2}
    value = lambda loss, cls, seed, score: auroc[cls] + 0.001 * seed
    df = pd.concat([rows(dataset="mvtec", classes=["carpet", "bottle", "cable", "grid"], losses=("firm",),
                         outliers=o, value=value) for o in ("ref_cutpaste_scar", "ref_nsa")])
    res = C.evaluate_claims(df, None, claims_doc(entry), **FAST)[0]
    assert res.n_pairs == 5 and res.n_cells == 10  # 5 seeds, each the mean over 2 generators; grid in neither
    assert res.stats.estimate == pytest.approx(70.0 - 93.0)
    assert res.verdict == "supported"


def test_a_difference_of_differences():
    entry = """
    - id: did
      group: g
      kind: interaction
      quote: q
      source: s
      statistic: auroc
      effect: difference
      a: {dataset: cifar10, loss: firm, outliers: oe}
      b: {dataset: cifar10, loss: ntxent, outliers: oe}
      vs:
        a: {dataset: cifar10, loss: firm, outliers: rot}
        b: {dataset: cifar10, loss: ntxent, outliers: rot}
      direction: ">"
    """
    oe = rows(outliers="oe", value=lambda loss, cls, seed, score: 0.95 if loss == "firm" else 0.90)
    rot = rows(outliers="rot", value=lambda loss, cls, seed, score: 0.93 if loss == "firm" else 0.92)
    res = C.evaluate_claims(pd.concat([oe, rot]), None, claims_doc(entry), **FAST)[0]
    assert res.n_pairs == 5 and res.n_cells == 50 and res.stats.estimate == pytest.approx(5.0 - 1.0)


def test_an_ambiguous_selection_is_refused():
    df = pd.concat([rows(), rows(recipe="paper_v2")])  # two base recipes, neither matched to the other side
    res = C.evaluate_claims(df, None, claims_doc(order("c").replace('loss: ntxent}', 'loss: ntxent, variant: bs256}')),
                            **FAST)[0]
    assert res.verdict == "not run"
    both = C.evaluate_claims(pd.concat([rows(), rows(recipe="paper_v2"), rows(recipe="paper-bs256")]), None,
                             claims_doc(order("c").replace('loss: ntxent}', 'loss: ntxent, variant: bs256}')),
                             **FAST)[0]
    assert both.verdict == "not run" and "several rows per unit" in both.detail and "recipe" in both.detail


def test_the_untrained_encoder_check_uses_the_same_runs():
    entry = order("c") + "  untrained: [a]\n"
    claims = claims_doc(entry)
    assert [c.id for c in claims] == ["c", "learns.firm.cifar10"]
    df = rows(value=effect_value({"firm": 0.01}), untrained=lambda cls, seed: 0.5 + 0.01 * seed)
    res = by_id(C.evaluate_claims(df, None, claims, **FAST))
    learns = res["learns.firm.cifar10"]
    firm = df[df["loss"] == "firm"]
    assert learns.stats.estimate == pytest.approx(((firm["auroc"] - firm["untrained_auroc"]) * 100).mean())
    assert learns.verdict == "supported" and learns.claim.derived_from == ("c",)
    # the check is tested in a family of its own: it neither dilutes nor counts towards the paper's claims
    assert res["c"].family == "paper" and res["c"].family_size == 1
    assert learns.family == "learns" and learns.family_size == 1


CURVE = """
- id: {id}
  group: g
  kind: convergence
  quote: q
  source: s
  statistic: {statistic}
  effect: difference
  a: {{dataset: cifar10, loss: firm}}
  b: {b}
  direction: "{direction}"
"""


def test_learning_curve_statistics_match_hand_computations():
    # firm: reaches 0.9 at epoch 20 and stays; ntxent: rises linearly to 0.9 at epoch 100 with a dip at 50
    shapes = {"firm": lambda e, s: 0.5 if e == 0 else (0.8 if e < 20 else 0.9),
              "ntxent": lambda e, s: 0.5 if e == 0 else 0.8 + 0.001 * e - (0.02 if e == 50 else 0)}
    cv = curves(("firm", "ntxent"), shapes)
    sm = rows(classes=range(3), seeds=range(3))
    claims = claims_doc(
        CURVE.format(id="speed", statistic="epochs_to_target", b="{dataset: cifar10, loss: ntxent}", direction="<"),
        CURVE.format(id="plateau", statistic="gain_after", b="{value: 1.0, why: threshold}", direction="<"),
        CURVE.format(id="wiggle", statistic="wiggle", b="{dataset: cifar10, loss: ntxent}", direction="<"),
        CURVE.format(id="drop", statistic="peak_drop", b="{dataset: cifar10, loss: ntxent}", direction="<"))
    res = by_id(C.evaluate_claims(sm, cv, claims, **FAST))
    # ntxent's last AUROC is 0.9 (epoch 100), reached first at 100; firm reaches it at epoch 20
    assert res["speed"].stats.mean_a == 20 and res["speed"].stats.mean_b == 100
    assert res["speed"].stats.estimate == -80 and res["speed"].n_pairs == 3 and res["speed"].n_cells == 9
    # gain after 20% of training (epoch 20): 0 points; the effect is 0 - 1 = -1 against the threshold
    assert res["plateau"].stats.estimate == pytest.approx(-1.0)
    # ntxent from epoch 10 to 100 (81 ... 90 points, 83 instead of 85 at epoch 50): the steps 84 -> 83 -> 86
    # move 1 + 3 where 2 would do, so sum |steps| = 9 (net) + 2, over 9 steps
    assert res["wiggle"].stats.mean_b == pytest.approx(2.0 / 9) and res["wiggle"].stats.mean_a == pytest.approx(0.0)
    assert res["drop"].stats.mean_a == pytest.approx(0.0)  # epoch 0 (untrained, 0.5) is left out


def test_curve_claims_need_finished_runs():
    shapes = {"firm": lambda e, s: 0.9, "ntxent": lambda e, s: 0.8}
    cv = curves(("firm", "ntxent"), shapes)
    sm = rows(classes=range(3), seeds=range(3), status="missing")
    claims = claims_doc(CURVE.format(id="drop", statistic="peak_drop", b="{dataset: cifar10, loss: ntxent}",
                                     direction="<"))
    assert C.evaluate_claims(sm, cv, claims, **FAST)[0].verdict == "not run"
    assert C.evaluate_claims(sm, cv, claims, partial=True, **FAST)[0].verdict == "pending"
    alone = C.evaluate_claims(pd.DataFrame(columns=S.COLUMNS), cv, claims, **FAST)[0]  # curves alone
    assert alone.n_pairs == 3 and alone.n_cells == 9


# --------------------------------------------------------------------------- #
# rendering and the command
# --------------------------------------------------------------------------- #
def test_rendering_gives_a_verdict_per_claim(tmp_path):
    claims = claims_doc(order("up"), order("none", "firm", "supcon"), order("few", dataset="cifar100"))
    df = pd.concat([rows(value=effect_value({"firm": 0.01})), rows(dataset="cifar100", classes=[0], seeds=[0])])
    results = C.evaluate_claims(df, None, claims, **FAST)
    md = C.claims_markdown(results, forest="claims_forest.png")
    for r in results:
        line = next(x for x in md.splitlines() if f"**{r.claim.id}**" in x)
        assert r.verdict in line
    assert "Holm" in md and f"fewer than {C.MIN_PAIRS} seeds" in md and "sign-flip" in md and "Shapiro" not in md
    table = C.claims_table(results)
    assert list(table.columns) == C.CLAIM_COLUMNS and list(table["verdict"]) == ["supported", "not run", "too few"]
    html = C.claims_html(results, forest_href="claims_forest.png")
    assert html.count("<tr class=") == 3 and "not-run" in html
    paths = C.write_forest(results, tmp_path / "forest.png")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_the_csv_is_the_record_both_views_render_the_same_from_it(tmp_path):
    """The report renders its section from results/claims.csv: read back, it gives the same Markdown and HTML."""
    claims = claims_doc(order("up"), order("none", "firm", "supcon"),
                        order("mini", dataset="fashion_mnist"), order("few", dataset="cifar100"))
    value = effect_value({"firm": 0.01})
    df = pd.concat([rows(value=value), rows(dataset="cifar100", classes=[0], seeds=[0]),
                    rows(dataset="fmnist_mini", classes=[0, 1], seeds=[0, 1], recipe="mini", value=value)])
    results = C.evaluate_claims(df, None, claims, **FAST)
    table = C.claims_table(results)
    table.to_csv(tmp_path / "claims.csv", index=False)
    back = C.read_claims_table(tmp_path / "claims.csv")
    assert C.claims_markdown(back) == C.claims_markdown(results)
    assert C.claims_html(back, forest_href="f.png") == C.claims_html(results, forest_href="f.png")
    assert back["stand_in"].tolist() == [False, False, True, False]
    html = C.claims_html(back)
    assert C.STAND_IN_LABEL in html and "fmnist_mini for fashion_mnist" in html
    with pytest.raises(FileNotFoundError, match="firm-bench claims"):
        C.read_claims_table(tmp_path / "absent.csv")


def test_a_side_without_runs_names_the_experiment_that_plans_it():
    plan = grid.plan({"preset": "mini", "seeds": [0], "experiments": {
        "table5": {"datasets": ["fmnist_mini"], "classes": [0], "losses": ["ntxent", "firm"]}}})
    claims = claims_doc(order("mini", "firm", "ntxent", dataset="fashion_mnist"),
                        order("other", "firm", "supcon", dataset="fashion_mnist"),
                        order("cifar", dataset="cifar10"))
    res = by_id(C.evaluate_claims(rows(dataset="fmnist_mini", classes=[0], losses=("firm",), seeds=[0],
                                       recipe="mini"), None, claims, plan=plan, **FAST))
    assert res["mini"].verdict == "not run"
    assert "side b (fashion_mnist ntxent (rot) cos k=5)" in res["mini"].detail
    assert "planned in experiment table5 (results/summary/table5.csv)" in res["mini"].detail
    assert "side b (fashion_mnist supcon (rot) cos k=5)" in res["other"].detail
    assert "this config plans no such run" in res["other"].detail
    assert "side a (cifar10 firm (rot) cos k=5) nor side b" in res["cifar"].detail


def test_write_claims_and_the_command_on_partial_results(tmp_path, capsys):
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump({"claims": [yaml.safe_load(order("up"))[0],
                                                      yaml.safe_load(order("none", "firm", "supcon"))[0]]}))
    summary = tmp_path / "t5.csv"
    rows(value=effect_value({"firm": 0.01})).to_csv(summary, index=False)
    out = tmp_path / "results" / "claims.md"
    common = ["claims", "--config", "paper", "--out", str(out), "--csv", str(tmp_path / "claims.csv"),
              "--forest", str(tmp_path / "forest.png"), "--claims-file", str(claims_file)]
    assert cli_main([*common, "--summaries", str(summary), str(tmp_path / "absent.csv"), "--partial"]) == 0
    md = out.read_text()
    assert "Interim" in md and "../forest.png" in md and f"not built yet: {tmp_path / 'absent.csv'}" in md
    assert (tmp_path / "forest.pdf").is_file()
    assert list(pd.read_csv(tmp_path / "claims.csv")["verdict"]) == ["supported", "pending"]
    # without --partial a summary named on the command line must exist
    assert cli_main([*common, "--summaries", str(summary), str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv does not exist" in capsys.readouterr().err
    # without --summaries: the config's experiments, whatever summaries exist (here: none but table5)
    (tmp_path / "summary").mkdir()
    rows(value=effect_value({"firm": 0.01}), experiment="table5").to_csv(tmp_path / "summary" / "table5.csv",
                                                                         index=False)
    assert cli_main([*common, "--summary-dir", str(tmp_path / "summary")]) == 0
    md = out.read_text()
    assert "config paper: 1 summary, 100 runs; not built yet:" in md and str(tmp_path / "summary" / "table1a.csv") in md
    table = pd.read_csv(tmp_path / "claims.csv")
    assert list(table["verdict"]) == ["supported", "not run"]
    assert "planned in experiments" in table["detail"].iloc[1] and "table5" in table["detail"].iloc[1]


def test_the_mini_config_tests_the_fashion_mnist_claims_on_its_stand_in():
    """Every run the mini config plans, with synthetic results: stand-in verdicts where it can, not run elsewhere."""
    plan = grid.plan(grid.load_workflow_config("mini"))
    results_of = plan_results(plan, effect_value({"firm": 0.01, "supcon": -0.05}))
    summary = pd.concat([r for r, _ in results_of.values()])
    crv = pd.concat([c for _, c in results_of.values()])
    results = C.evaluate_claims(summary, crv, n_resamples=500, plan=plan)
    for r in results:
        sides = r.claim.sides().values()
        if all(s.dataset == "fashion_mnist" for s in sides) and r.verdict != "not run":
            assert r.stand_in and r.family in ("stand-in", "stand-in learns", "")
        else:
            assert r.verdict == "not run" or r.stand_in, r.claim.id
    by = by_id(results)
    verdicts = {"supported", "contradicted", "not significant"}
    # Table 5 in miniature (2 classes x 2 seeds of each loss): a verdict on each of its claims, n = 2 seeds
    for cid in ("t5.firm_gt_ntxent.auroc.fashion_mnist", "t5.firm_gt_supcon.aulc.fashion_mnist",
                "t5.supcon_binary_fails.fashion_mnist", "fig4.firm_faster.ntxent.fashion_mnist",
                "t1.ensemble_no_gain.rot.fashion_mnist", "learns.firm.fashion_mnist", "learns.supcon.fashion_mnist"):
        r = by[cid]
        assert r.verdict in verdicts and r.n_pairs == 2 and r.n_cells == 4, (cid, r.verdict, r.detail)
        assert r.coverage == "classes 2/10; seeds 2/5 (0,1)"
    big = by["t5.firm_gt_supcon.auroc.fashion_mnist"]  # the synthetic 6-point effect, on one degree of freedom
    assert big.stats.estimate == pytest.approx(6.0, abs=1.0) and big.power == "underpowered at n = 2"
    assert "the paper prints only its mean over all 10 classes" in big.paper_scope
    assert by["learns.firm.fashion_mnist"].verdict == "supported"  # a 25-point gain passes even at n = 2
    # vs reported on 2 of 10 classes: Table 1c prints no per-class DROC, so no comparison with its 10-class mean
    assert by["t1.firm_gt_droc.fashion_mnist"].verdict == "withheld"
    assert by["t1.oe_below_rot.fashion_mnist"].verdict == "not run"  # no outlier exposure in the miniature
    assert "this config plans no such run" in by["t1.oe_below_rot.fashion_mnist"].detail
    assert not any(r.family == "paper" for r in results)  # never evidence about the paper
    md = C.claims_markdown(results)
    assert "Stand-in data only: nothing here is evidence about the paper" in md
    assert md.count("| not run: ") == sum(r.verdict == "not run" for r in results)
