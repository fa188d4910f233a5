"""Summary rows as the workflow writes them, built by hand (paper tables, figures, report tests)."""

import itertools

import numpy as np
import pandas as pd

from firm_bench.core.facts.method import score_family
from firm_bench.datasets import DATASETS
from firm_bench.paper import reported as rep
from firm_bench.paper.labels import default_k
from firm_bench.records.summary import COLUMNS

K = default_k()


def summary(experiment, datasets, classes, losses, outliers, scores, seeds=(0, 1), recipe="paper", auroc=0.9,
            **columns):
    """Summary rows as the workflow writes them: every run x score (x k), all ok."""
    rows = []
    for dataset, cls, loss, outl, score, seed in itertools.product(datasets, classes, losses, outliers, scores, seeds):
        for k in ([1, K] if score_family(score) == "knn" else [None]):
            rows.append({
                "experiment": experiment, "dataset": dataset, "cls": str(cls), "loss": loss, "outliers": outl,
                "recipe": recipe, "seed": seed, "evalset": "test", "score": score, "k": k,
                "auroc": auroc + 0.002 * seed - (0.3 if k == 1 else 0), "aulc": auroc - 0.05, "status": "ok",
                "reason": None, "schedule": "onecycle", "checkpoint": "last", "bn_momentum": 0.9, "tau": 0.2,
                "batch_size": 32, "epochs": 2000, "train_seconds": 60.0,
                "run_dir": f"results/runs/{dataset}/{cls}/{loss}/{outl}/{recipe}/seed{seed}", **columns,
            })
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["k"] = df["k"].astype("Int64")
    return df


def summary_from_paper(table: str, seeds=(0, 1)) -> pd.DataFrame:
    """Our runs as if they had reproduced the paper's own rows of ``table`` exactly.

    Per-class paper values become the runs' AUROC / AULC (+- 0.05 points over
    seeds); a table that prints only class means gets that mean for every
    class of the dataset. A label the paper does not state becomes ours
    (cutpaste_scar, cos). k-NN scores also get a k = 1 row 30 points off.
    """
    cells = rep.paper_rows(rep.load_reported(), table)
    cells = cells[cells["loss"].notna() & cells["metric"].isin(["auroc", "aulc"])]
    rows = []
    keys = ["dataset", "loss", "outliers", "score"]
    for key, group in cells.groupby(keys, dropna=False, sort=False):
        dataset, loss, outliers, score = key
        outliers = outliers if isinstance(outliers, str) else "cutpaste_scar"
        score = score if isinstance(score, str) else "cos"
        ood = group["ood"].notna().any()  # Table 4: one result per OOD set
        values = group.pivot_table(index=["ood", "cls"] if ood else ["cls"], columns="metric", values="value_pct",
                                   dropna=False).reset_index()
        per_item = values[(values["cls"] != "mean") & (values.get("ood", "") != "mean")]
        if per_item.empty:  # class means only: every class gets the mean
            per_item = pd.concat([values.assign(cls=str(c)) for c in range(len(DATASETS.get(dataset).classes))])
        for item in per_item.to_dict("records"):
            for seed in seeds:
                for k in ([1, K] if score_family(score) == "knn" else [None]):
                    off = 0.05 * (2 * seed - 1) / 100 - (0.3 if k == 1 else 0)
                    ood_name = item["ood"] if ood else "test"
                    rows.append({
                        "experiment": f"t{table}", "dataset": dataset, "cls": item["cls"], "loss": loss,
                        "outliers": outliers, "recipe": "paper", "seed": seed, "evalset": ood_name, "score": score,
                        "k": k, "auroc": item.get("auroc", 90.0) / 100 + off, "aulc": item.get("aulc", np.nan) / 100,
                        "status": "ok", "reason": None, "schedule": "onecycle", "checkpoint": "last",
                        "bn_momentum": 0.9, "tau": 0.2, "batch_size": 32, "epochs": 2000, "train_seconds": 60.0,
                        "run_dir": f"results/runs/{dataset}/{item['cls']}/{loss}/{outliers}/paper/seed{seed}",
                    })
    return pd.DataFrame(rows, columns=COLUMNS)
