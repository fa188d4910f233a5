"""What a reader sees: every table and figure of a mini-workflow-like result set, scanned for leaked artefacts.

The summaries are built like the mini workflow's (``workflow/config/mini.yaml``:
fmnist_mini, the four losses, Table 1's scores, Table 8's, Figure 5's
variants, the untrained-encoder baseline, the loss forms), written to CSV and
read back as the rules read them (so counts come back as floats, as they do
from ``summary.csv``). Every caption, note and cell of every paper table
(Markdown, LaTeX, HTML) and every text of every paper figure is scanned for
"None", "nan", float artefacts of whole numbers ("6.0 epochs", "batch size
64.0", "32.0 px") and reST markup from docstrings; and the same with no runs
at all, and while runs are pending.
"""

import re

import matplotlib.text
import pandas as pd
import pytest

from firm_bench.paper import figures as figs
from firm_bench.paper import tables as tabs
from firm_bench.records.summary import read_summaries, write_csv
from tests.helpers.summaries import summary

#: what must never reach a reader, with what each pattern catches
LEAKS = {
    r"\bNone\b": "a Python None",
    r"(?i)\bnan\b": "a NaN",
    r"\b\d+\.0 (epochs?|px|classes|seeds?|runs?)\b": "a whole number printed as a float",
    r"\b(batch size|k =|epochs|training at|evaluated at) \d+\.0\b": "a whole number printed as a float",
    r"``|:func:|:mod:|:data:|:class:": "reST markup from a docstring",
}

FORMS = {"ntxent": "pairwise", "supcon": "concat", "supcon_star": "concat", "firm": "pairwise"}
MINI = {"schedule": "onecycle", "bn_momentum": 0.9, "batch_size": 64, "epochs": 6, "precision": "fp32",
        "normalization": "reference", "head_init": "kaiming", "image_size": 32, "eval_size": 32, "eval_zoom": 1.0,
        "batching": "paired", "untrained_auroc": 0.55}


def leaks(text: str) -> list[str]:
    return [f"{why}: {m.group(0)!r} in …{text[max(0, m.start() - 60):m.end() + 60]}…"
            for pattern, why in LEAKS.items() for m in re.finditer(pattern, text)]


def test_the_scan_sees_each_leak():
    for bad in ("schedule None", "AUROC nan", "6.0 epochs", "batch size 64.0", "evaluated at 32.0 px",
                "the spec's ``note``"):
        assert leaks(bad), bad
    assert leaks("momentum 0.9, 6 epochs, batch size 64, zoom 1.0, evaluated at 32 px, a nano-scale") == []


def mini_summaries(tmp_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary and curve rows as the mini workflow's, through a CSV round trip."""
    parts = [
        summary("table1", ["fmnist_mini"], [0, 1], ["firm"], ["rot"], ["cos", "rot", "ens", "rot_norm", "ens_norm"],
                recipe="mini", **MINI),
        summary("table5", ["fmnist_mini"], [0, 1], ["ntxent", "supcon", "supcon_star", "firm"], ["rot"], ["cos"],
                recipe="mini", **MINI),
        summary("table8", ["fmnist_mini"], [0], ["ntxent", "firm"], ["rot"],
                ["center", "kde", "kde_rot", "kde_ens", "ocsvm", "locsvm", "locsvm_rot", "locsvm_ens"], seeds=(0,),
                recipe="mini", **MINI),
        summary("fig5", ["fmnist_mini"], [0], ["firm"], ["rot"], ["cos", "cos_norm"], seeds=(0,), recipe="mini",
                **MINI),
        summary("fig5", ["fmnist_mini"], [0], ["firm"], ["rot"], ["cos", "cos_norm"], seeds=(0,),
                recipe="mini-tau0.5", **{**MINI, "tau": 0.5}),
        summary("fig5", ["fmnist_mini"], [0], ["firm"], ["rot"], ["cos", "cos_norm"], seeds=(0,),
                recipe="mini-bs128", **{**MINI, "batch_size": 128}),
    ]
    rows = pd.concat(parts, ignore_index=True)
    rows["loss_form"] = rows["loss"].map(FORMS)
    rows["tau"] = rows["tau"].where(rows["recipe"] != "mini-tau0.5", 0.5)
    curves = pd.DataFrame([
        {"experiment": "table5", "dataset": "fmnist_mini", "cls": str(c), "loss": loss, "outliers": "rot",
         "recipe": "mini", "seed": s, "epoch": e, "auroc": 0.6 + 0.03 * e + 0.01 * s, "loss_value": 1.0,
         "elapsed_s": float(e), "run_dir": f"results/runs/fmnist_mini/{c}/{loss}/rot/mini/seed{s}"}
        for c in (0, 1) for loss in FORMS for s in (0, 1) for e in (0, 2, 4, 6)])
    return read_summaries([write_csv(rows, tmp_path / "summary.csv")]), curves


def states(tmp_path):
    rows, curves = mini_summaries(tmp_path)
    pending = rows.assign(status="pending", auroc=None, aulc=None, untrained_auroc=None,
                          **{c: None for c in MINI if c != "untrained_auroc"})
    return {"mini": (rows, curves, False), "no runs": (rows.iloc[0:0], curves.iloc[0:0], False),
            "pending": (pending, curves.iloc[0:0], True)}


@pytest.mark.parametrize("state", ["mini", "no runs", "pending"])
def test_no_table_shows_a_reader_an_artefact(state, tmp_path):
    rows, _, partial = states(tmp_path)[state]
    found = {}
    for name in tabs.TABLES.names():
        cells = tabs.compare(tabs.TABLES.get(name), rows, partial=partial)
        for fmt in ("md", "tex", "html"):
            text = tabs.render(tabs.TABLES.get(name), cells, fmt)
            if problems := leaks(text):
                found[f"{name}.{fmt}"] = problems[:3]
        if state == "no runs":
            md = tabs.render(tabs.TABLES.get(name), cells, "md")
            assert "no runs yet" in md and "Recipe:" not in md, name
    assert found == {}


def test_a_table_with_runs_states_the_recipe_with_integers(tmp_path):
    rows, _, _ = states(tmp_path)["mini"]
    md = tabs.render(tabs.TABLES.get("table5"), tabs.compare(tabs.TABLES.get("table5"), rows), "md")
    assert "batch size 64, 6 epochs" in md and "evaluated at 32 px, zoom 1.0 (training at 32 px)" in md
    assert "untrained in" not in md  # the untrained-encoder baseline trained no loss form


def figure_texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text())


@pytest.mark.parametrize("state", ["mini", "no runs", "pending"])
def test_no_figure_shows_a_reader_an_artefact(state, tmp_path, monkeypatch):
    rows, curves, partial = states(tmp_path)[state]
    monkeypatch.setitem(figs.FIGURES.get("fig2").params, "steps", 5)
    found = {}
    for name in figs.FIGURES.names():
        spec = figs.FIGURES.get(name)
        data = figs.FigureData(rows if spec.kind != "landscape" else rows.iloc[0:0], curves, partial=partial)
        if problems := leaks(figure_texts(figs.draw(name, data))):
            found[name] = problems[:3]
    assert found == {}


def test_no_spec_text_carries_docstring_markup():
    for registry in (tabs.TABLES, figs.FIGURES):
        for name in registry.names():
            spec = registry.get(name)
            for text in (spec.title, spec.doc, getattr(spec, "note", "")):
                assert leaks(text or "") == [], name
