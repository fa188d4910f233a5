"""Synthetic summaries and learning curves for the claims tests, and small claims files built in the test."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import yaml

from firm_bench.core.facts.method import uses_k
from firm_bench.paper import claims as C
from firm_bench.records.summary import COLUMNS, CURVE_COLUMNS


def rows(dataset="cifar10", classes=range(10), losses=("firm", "ntxent"), outliers="rot", recipe="paper",
         seeds=range(5), scores=("cos",), k=5, value=None, untrained=None, aulc=None, status="ok", evalsets=("test",),
         experiment="x"):
    """Summary rows (``records.summary.COLUMNS``), one per run x evalset x score.

    value(loss, cls, seed, score) -> AUROC in [0, 1]; untrained(cls, seed) and aulc(loss, cls, seed) likewise.
    """
    value = value or (lambda loss, cls, seed, score: 0.9)
    out = []
    for cls in classes:
        for loss in losses:
            for seed in seeds:
                run_dir = f"results/runs/{dataset}/{cls}/{loss}/{outliers}/{recipe}/seed{seed}"
                for ev in evalsets:
                    for score in scores:
                        out.append(dict(
                            experiment=experiment, dataset=dataset, cls=str(cls), loss=loss, outliers=outliers,
                            recipe=recipe, seed=seed, evalset=ev, score=score, k=k if uses_k(score) else None,
                            auroc=value(loss, str(cls), seed, score) if status == "ok" else None,
                            aulc=(aulc(loss, str(cls), seed) if aulc else 0.85) if status == "ok" else None,
                            status=status, reason=None if status == "ok" else "synthetic",
                            untrained_auroc=untrained(str(cls), seed) if untrained else 0.6, run_dir=run_dir))
    df = pd.DataFrame(out, columns=COLUMNS)
    df["k"] = df["k"].astype("Int64")
    return df


def curves(losses, shapes, dataset="cifar10", classes=range(3), seeds=range(3), epochs=range(0, 101, 10),
           recipe="paper", outliers="rot", experiment="x"):
    """Learning curves (``CURVE_COLUMNS``): shapes[loss](epoch, seed) -> AUROC in [0, 1]."""
    out = []
    for cls in classes:
        for loss in losses:
            for seed in seeds:
                for e in epochs:
                    out.append(dict(experiment=experiment, dataset=dataset, cls=str(cls), loss=loss,
                                    outliers=outliers, recipe=recipe, seed=seed, epoch=e, auroc=shapes[loss](e, seed),
                                    loss_value=1.0, elapsed_s=1.0,
                                    run_dir=f"results/runs/{dataset}/{cls}/{loss}/{outliers}/{recipe}/seed{seed}"))
    return pd.DataFrame(out, columns=CURVE_COLUMNS)


def effect_value(effects: dict, noise=0.003, seed=0):
    """AUROC = 0.85 + per-class difficulty (shared by the losses) + the loss's effect + noise."""
    rng = np.random.default_rng(seed)
    difficulty = {str(c): rng.normal(0, 0.04) for c in range(20)}
    cache = {}

    def value(loss, cls, s, score):
        key = (loss, cls, s, score)
        if key not in cache:
            cache[key] = 0.85 + difficulty.get(cls, 0.0) + effects.get(loss, 0.0) + rng.normal(0, noise)
        return cache[key]

    return value


def plan_results(plan, value, epochs=range(0, 7, 2)):
    """Summaries and curves of every run a ``planning.grid.Plan`` plans, per experiment: {experiment: (rows, curves)}.

    Every score and k the experiment asks for; AUROC from ``value`` (as :func:`rows`), a rising learning curve.
    """
    out = {}
    for exp, members in plan.experiments.items():
        spec = plan.config["experiments"][exp]
        frames, crv = [], []
        for run in dict.fromkeys(members):
            for score in spec["scores"]:
                for k in (spec["k"] if uses_k(score) else [None]):
                    frames.append(rows(dataset=run.dataset, classes=[run.cls], losses=(run.loss,),
                                       outliers=run.outliers, recipe=run.recipe, seeds=[run.seed], scores=(score,),
                                       k=k, value=value, experiment=exp))
            crv.append(curves((run.loss,), {run.loss: lambda e, s: 0.6 + 0.05 * e}, dataset=run.dataset,
                              classes=[run.cls], seeds=[run.seed], epochs=epochs, recipe=run.recipe,
                              outliers=run.outliers, experiment=exp))
        out[exp] = (pd.concat(frames, ignore_index=True), pd.concat(crv, ignore_index=True))
    return out


def claims_doc(*entries: str, defaults: str = "cls: all\noutliers: rot\nvariant: base\nscore: cos\nk: null\n"
               "evalset: test") -> list[C.Claim]:
    """Claims parsed from YAML entries written in the test (``test.yaml``)."""
    text = "defaults:\n" + textwrap.indent(defaults, "  ") + "\nclaims:\n" + "\n".join(
        textwrap.indent(textwrap.dedent(e).strip(), "  ") for e in entries)
    return C.parse_claims(yaml.safe_load(text), "test.yaml")


ORDER = """
- id: {id}
  group: g
  kind: ordering
  quote: "q"
  source: "s"
  statistic: auroc
  effect: difference
  a: {{dataset: {dataset}, loss: {a}}}
  b: {{dataset: {dataset}, loss: {b}}}
  direction: "{direction}"
"""


def order(id="c", a="firm", b="ntxent", direction=">", dataset="cifar10") -> str:
    """One ordering claim (AUROC difference, a vs b on every class) as a claims-file entry."""
    return ORDER.format(id=id, a=a, b=b, direction=direction, dataset=dataset)


VS_REPORTED = """
- id: {id}
  group: g
  kind: vs_reported
  quote: q
  source: s
  statistic: auroc
  effect: difference
  a: {{dataset: {dataset}, loss: firm, mean_over: cls}}
  b: {{reported: {{table: "{table}", method: {method}}}}}
  direction: ">"
  paper: {{table: "{table}"}}
"""


def vs_reported(id="lit", dataset="cifar10", table="1a", method="DROC") -> str:
    """One vs-reported claim (FIRM's per-seed class means against a literature row) as a claims-file entry."""
    return VS_REPORTED.format(id=id, dataset=dataset, table=table, method=method)
