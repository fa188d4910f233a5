"""firm_bench.core.facts: every registered name's facts, declared once, read without torch by both halves."""

from __future__ import annotations

import importlib

import pytest

from firm_bench.core.errors import UnknownNameError
from firm_bench.core.facts import datasets, method, paper
from firm_bench.core.registry import Registry

#: each torch-side registry (module, attribute) and the facts table it registers
TORCH_REGISTRIES = [
    ("firm_bench.datasets", "DATASETS", datasets.DATASETS), ("firm_bench.method.losses", "LOSSES", method.LOSSES),
    ("firm_bench.method.outliers", "OUTLIERS", method.OUTLIERS), ("firm_bench.method.scores", "SCORES", method.SCORES),
    ("firm_bench.method.schedules", "SCHEDULES", method.SCHEDULES),
    ("firm_bench.method.models", "ENCODERS", method.ENCODERS),
    ("firm_bench.paper.tables", "TABLES", paper.TABLES), ("firm_bench.paper.figures", "FIGURES", paper.FIGURES),
]


@pytest.mark.parametrize("module, attr, table", TORCH_REGISTRIES, ids=[r[1] for r in TORCH_REGISTRIES])
def test_every_declared_name_has_its_code_and_nothing_else_registers(module, attr, table):
    """A name config validation accepts (its facts) is one the torch half can build, in the declared order."""
    assert getattr(importlib.import_module(module), attr).names() == list(table)


def test_a_registry_refuses_a_name_without_facts():
    reg = Registry("loss", facts=method.LOSSES)
    reg.add("firm", 1)
    with pytest.raises(ValueError, match="'focal' has no facts record: declare it in firm_bench/core/facts/"):
        reg.add("focal", 2)


def test_loss_forms_and_lookups():
    assert method.resolve_form("supcon") == "concat" and method.resolve_form("firm") == "pairwise"
    assert method.resolve_form("supcon", "pairwise") == "pairwise"
    with pytest.raises(ValueError, match="reference, pairwise, concat"):
        method.resolve_form("firm", "both")
    with pytest.raises(UnknownNameError, match="unknown loss 'frim'; valid: ntxent, supcon"):
        method.resolve_form("frim")
    assert [n for n, f in method.LOSSES.items() if f.id_classes] == ["firm"]
    assert method.score_family("kde_rot") == "kde" and method.uses_k("ens_norm") and not method.uses_k("center")
    with pytest.raises(UnknownNameError, match="unknown score 'coss'"):
        method.score_family("coss")
    assert method.OUTLIERS["oe"].multiplicity({"oe_ratio": 5}) == 6 and method.OUTLIERS["rot"].multiplicity({}) == 4
    # only the reproductions of the reference's own generators (ref_*) state where they differ from it
    assert {n for n, f in method.OUTLIERS.items() if f.differences} == {n for n in method.OUTLIERS if n.startswith("ref_")}
    assert set(method.SCHEDULES.values()) <= {"cycle", "constant"}  # what config validation distinguishes


def test_dataset_facts():
    cifar = datasets.dataset("cifar10")
    assert cifar.classes[:2] == ("airplane", "automobile") and cifar.role == "one_class"
    assert cifar.size("train_per_class") == 5000 and cifar.class_id("2") == 2
    mvtec = datasets.dataset("mvtec")
    assert mvtec.class_id(0) == "bottle" and mvtec.size("train") == sum(mvtec.sizes["train_per_class"].values())
    assert mvtec.size("test", "screw") == 160
    assert set(mvtec.class_groups["objects"]) | set(mvtec.class_groups["textures"]) == set(mvtec.classes)
    fmnist = datasets.dataset("fashion_mnist")
    assert fmnist.class_index("ankle_boot") == 9 and fmnist.stats("reference") != fmnist.stats()
    with pytest.raises(ValueError, match="unknown class 'all'.*ood_split"):
        fmnist.class_index("all")
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar11'; valid: cifar10"):
        datasets.dataset("cifar11")
    with pytest.raises(ValueError, match="no train size"):
        datasets.dataset("oe").size("train")


def test_paper_titles_name_their_item():
    for name, title in [*paper.TABLES.items(), *paper.FIGURES.items()]:
        number = name.removeprefix("table").removeprefix("fig")
        assert title.startswith(f"{'Table' if name.startswith('table') else 'Figure'} {number}: "), name
    with pytest.raises(UnknownNameError, match="unknown paper item 'table99'"):
        paper.title("table99")
