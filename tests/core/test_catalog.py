"""firm_bench.core.catalog: the registries' names and facts without torch, from a snapshot firm_bench.build_catalog writes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from firm_bench import build_catalog
from firm_bench.core import catalog
from firm_bench.core.errors import UnknownNameError
from firm_bench.planning import grid as fw
from tests.helpers import ROOT


def test_snapshot_matches_the_live_registries():
    stored = json.loads(catalog.SNAPSHOT.read_text())
    assert stored == build_catalog.build(), "firm_bench/schema/catalog.json is stale: run firm-bench catalog --write"
    check = [sys.executable, "-m", "firm_bench.cli", "catalog", "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0


def test_snapshot_content_is_what_the_registries_say():
    from firm_bench.datasets import get_dataset
    from firm_bench.method.losses import LOSSES
    from firm_bench.method.scores import SCORE_FAMILIES

    assert catalog.names("loss.name") == LOSSES.names()
    assert catalog.dataset("cifar10").classes[:2] == ["airplane", "automobile"] == list(get_dataset("cifar10").classes[:2])
    assert catalog.dataset("cifar10").role == "one_class"
    assert all(catalog.score_family(s) == f for s, f in SCORE_FAMILIES.items())
    assert set(catalog.score_families()) == set(SCORE_FAMILIES.values())


def test_loss_forms_without_torch_equal_the_losses():
    from firm_bench.method.losses import FORM_SETTINGS, ID_CLASS_LOSSES, LOSSES, resolve_form

    for name in LOSSES.names():
        for setting in FORM_SETTINGS:
            assert catalog.loss_form(name, setting) == resolve_form(name, setting)
        assert catalog.loss_takes_id_classes(name) == (name in ID_CLASS_LOSSES)
    assert catalog.loss_form("supcon") == "concat" and catalog.loss_form("firm") == "pairwise"
    with pytest.raises(ValueError, match="reference, pairwise, concat"):
        catalog.loss_form("firm", "both")
    with pytest.raises(UnknownNameError, match="unknown loss 'frim'"):
        catalog.loss_form("frim")


@pytest.fixture()
def reduced_snapshot(monkeypatch):
    """A snapshot that lacks the loss 'firm', the dataset 'svhn' and the score 'kde' (as if registered later)."""
    build_catalog.load_registries()  # the registries of this process: what a miss falls back to
    snap = copy.deepcopy(catalog.live())
    for key, name in (("loss.name", "firm"), ("dataset.name", "svhn"), ("scores.names", "kde")):
        snap["registries"][key] = [e for e in snap["registries"][key] if e["name"] != name]
    monkeypatch.setattr(catalog, "snapshot", lambda: snap)
    return snap


def test_a_name_missing_from_the_snapshot_falls_back_to_the_registries(reduced_snapshot):
    assert "firm" not in catalog.names("loss.name")  # nothing asked for: the snapshot
    assert "firm" in catalog.names("loss.name", "firm")
    svhn = next(e for e in catalog.live()["registries"]["dataset.name"] if e["name"] == "svhn")
    assert catalog.dataset("svhn") == catalog.DatasetEntry(**{k: v for k, v in svhn.items() if k != "name"})
    assert catalog.score_family("kde") == "kde"


def test_unknown_names_fail_listing_the_valid_ones():
    assert "frim" not in catalog.names("loss.name", "frim")
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar11'; valid: .*cifar10"):
        catalog.dataset("cifar11")
    with pytest.raises(UnknownNameError, match="unknown score 'coss'"):
        catalog.score_family("coss")
    with pytest.raises(KeyError, match="unknown key"):
        catalog.names("loss")


def test_planning_the_paper_grid_imports_no_torch():
    code = (
        "import sys, yaml\n"
        "from firm_bench.planning import grid\n"
        f"p = grid.plan(yaml.safe_load(open({str(ROOT / 'workflow/config/paper.yaml')!r})))\n"
        "assert len(p.runs) > 1000, len(p.runs)\n"
        "grid.paper_item_feeders(p.config)\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_ids_round_trip_and_bad_ids_are_named():
    run = fw.Run("cifar10", "3", "firm", "rot", "paper-tau0.1", 4)
    assert run.id == "cifar10/3/firm/rot/paper-tau0.1/seed4"
    assert fw.Run.parse(run.id) == run
    assert run.path("results/runs") == "results/runs/" + run.id
    for bad in ("cifar10/3/firm/rot/paper", "cifar10/3/firm/rot/paper/4", "a/b/c/d/e/seedx"):
        with pytest.raises(ValueError, match="not a run id"):
            fw.Run.parse(bad)
