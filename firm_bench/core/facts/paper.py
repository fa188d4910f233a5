"""The paper's tables and figures by name, with their titles, declared once as data (no pandas).

Each title names the paper item and what it shows (``Table 5: ...``): the heading of every output, the
report's, and an experiment's default title. The specs (``paper/tables/specs.py``, ``paper/figures/specs.py``)
say how each is built; their registries refuse a name without a title here. Planning reads the names.
"""

from __future__ import annotations

from firm_bench.core.errors import UnknownNameError

TABLES: dict[str, str] = {
    "table1a": ("Table 1a: one-class anomaly detection on CIFAR-10 (FIRM cos / rot / ens, FIRM w/ OE) vs the "
        "literature."),
    "table1b": "Table 1b: one-class anomaly detection on CIFAR-100 (20 superclasses), class means.",
    "table1c": "Table 1c: one-class anomaly detection on Fashion-MNIST, class means.",
    "table1d": "Table 1d: one-class anomaly detection on Cats-vs-Dogs, class means (no OE row: resolution mismatch).",
    "table2": "Table 2: MVTec AD, NT-Xent vs SupCon vs FIRM, per class.",
    "table3": "Table 3: MVTec AD, FIRM vs the literature (DOCC, CutPaste, P-SVDD, U-Student, NSA, RotNet, DROC).",
    "table4": "Table 4: unlabeled multiclass OOD detection, CIFAR-10 (all classes, no labels) vs six OOD sets.",
    "table5": "Table 5: AUROC and AULC of the four losses (S_cos) on four datasets, class means.",
    "table6": "Table 6: SupCon vs SupCon* on CIFAR-10 with the cos, center and KDE scores, per class.",
    "table7": ("Table 7: score functions (cos, cos_norm, rot, rot_norm, ens, ens_norm, center) of each loss on "
        "CIFAR-10, class means."),
    "table8": "Table 8: KDE scores (kde, kde_rot, kde_ens) of the four losses on CIFAR-10, per class.",
    "table9": "Table 9: LOC-SVM scores (locsvm, locsvm_rot, locsvm_ens) of NT-Xent and FIRM on CIFAR-10, per class.",
    "table10a": ("Table 10a: synthetic outliers from rotations, CIFAR-10 per class (S_cos), with FIRM's relative "
        "improvement."),
    "table10b": ("Table 10b: outliers from outlier exposure (OE), CIFAR-10 per class (S_cos), with FIRM's relative "
        "improvement."),
    "table11": "Table 11: every score function of the four losses per class, CIFAR-10, rotations.",
    "table12": "Table 12: every score function of NT-Xent, SupCon and FIRM w/ OE per class, CIFAR-10.",
    "table13": "Table 13: per-class AUROC on CIFAR-10 (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens).",
    "table14": ("Table 14: per-class AUROC on CIFAR-100, 20 superclasses (NT-Xent, SupCon, SupCon* cos; FIRM cos, "
        "rot, ens)."),
    "table15": "Table 15: per-class AUROC on Fashion-MNIST (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens).",
    "table16": "Table 16: per-class AUROC on Cats-vs-Dogs (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens).",
}
FIGURES: dict[str, str] = {
    "fig1": "Figure 1: learning curves of SupCon (binary) vs SupCon* (rotation classes), AUROC vs epoch.",
    "fig4": ("Figure 4: learning curves of NT-Xent, SupCon, SupCon* and FIRM per dataset (mean and spread over "
        "seeds)."),
    "fig2": ("Figure 2: loss landscapes of NT-Xent, SupCon and FIRM over (inlier, synthetic-outlier) cosine "
        "similarity."),
    "fig3": "Figure 3: t-SNE of MVTec test embeddings (metal nut, screw) for NT-Xent, SupCon and FIRM.",
    "fig6": "Figure 6: t-SNE of MVTec test embeddings, object classes, for NT-Xent, SupCon and FIRM (Appendix E).",
    "fig7": "Figure 7: t-SNE of MVTec test embeddings, texture classes, for NT-Xent, SupCon and FIRM (Appendix E).",
    "fig5": "Figure 5: AUROC vs temperature and vs batch size, without (cos) and with (cos_norm) the feature norm.",
}

#: paper items drawn without any run (why), so every workflow config renders them by default
RUNLESS: dict[str, str] = {"fig2": "drawn from the losses themselves"}


def title(item: str) -> str:
    """The title of paper item ``item`` (a table or a figure); UnknownNameError lists the valid names."""
    if item in TABLES or item in FIGURES:
        return TABLES.get(item) or FIGURES[item]
    raise UnknownNameError(f"unknown paper item {item!r}; valid: {', '.join([*TABLES, *FIGURES])}")
