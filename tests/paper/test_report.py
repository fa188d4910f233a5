"""firm_bench.paper.report: the one-page replication report, complete and partial, checked in a headless browser."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from firm_bench.cli import build_parser
from firm_bench.paper import claims as claims_mod
from firm_bench.paper import figures as figs
from firm_bench.paper import report
from firm_bench.paper import tables as tabs
from firm_bench.records.summary import write_csv
from tests.helpers.summaries import summary, summary_from_paper

CHROMIUM = Path("/usr/bin/chromium")


def test_feeders_default_to_the_experiment_name_and_follow_paper_items():
    cfg = {"experiments": {"table5": {}, "table7_oe": {"paper_items": ["table7"]}, "table7": {},
                           "table1": {"paper_items": ["table1a", "table13", "fig4"]}, "other": {}}}
    feeders = report.paper_item_feeders(cfg)
    assert set(feeders) == set(report.paper_items())
    assert feeders["table5"] == ["table5"] and feeders["table7"] == ["table7_oe", "table7"]
    assert feeders["fig4"] == ["table1"] and feeders["table2"] == [] and "other" not in sum(feeders.values(), [])
    with pytest.raises(ValueError, match="experiments.x.paper_items: unknown paper item 'table99'"):
        report.paper_item_feeders({"experiments": {"x": {"paper_items": ["table99"]}}})


def test_paper_items_follow_the_paper_numbering():
    items = report.paper_items()
    assert items[:5] == ["table1a", "table1b", "table1c", "table1d", "table2"]
    assert items[-7:] == [f"fig{i}" for i in range(1, 8)]


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.sections = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "a" and not a.get("href", "#").startswith("#"):
            self.hrefs.append(a["href"])
        if tag == "section":
            self.sections.append(a["id"])
        if tag in ("script", "link") and ("src" in a or "href" in a):
            raise AssertionError(f"the page loads {tag} {a} from elsewhere; it must be self-contained")


def parse(page: Path) -> _Images:
    p = _Images()
    p.feed(page.read_text())
    return p


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A workdir as after the workflow: summaries, two tables and two figures rendered, one run's versions.json."""
    root = tmp_path_factory.mktemp("work")
    (root / "results" / "summary").mkdir(parents=True)
    rows = summary_from_paper("5")
    rows["run_dir"] = [str(root / d) for d in rows["run_dir"]]
    first = Path(rows["run_dir"].iloc[0])
    first.mkdir(parents=True)
    (first / "versions.json").write_text(json.dumps({"git_commit": "abc1234", "torch": "2.14.1", "gpu": "NVIDIA H100",
                                                     "python": "3.11.7", "device": "cuda"}))
    src = write_csv(rows, root / "results" / "summary" / "table5.csv")
    write_csv(summary("fig5", ["cifar10"], [0], ["firm"], ["rot"], ["cos", "cos_norm"]), root / "results" / "summary" / "fig5.csv")
    tabs.write_table("table5", [src], root / "results" / "tables")
    tabs.write_table("table16", [], root / "results" / "tables")
    figs.write_figure("fig5", [root / "results" / "summary" / "fig5.csv"], [], root / "figures")
    figs.write_figure("fig1", [], [], root / "figures")
    claims_mod.write_claims([src], [], root / "results" / "claims.md", root / "results" / "claims.csv",
                            root / "results" / "claims_forest.png")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"preset": "paper", "experiments": {
        "table5": {"datasets": ["cifar10"], "losses": ["ntxent", "supcon", "supcon_star", "firm"]},
        "fig5": {"datasets": ["cifar10"], "classes": [0], "scores": ["cos", "cos_norm"]}}}))
    before = os.getcwd()
    os.chdir(root)  # the workdir, as under Snakemake
    try:
        page = report.build_report(config, root / "results" / "report" / "index.html",
                                   summary_dir=root / "results" / "summary", tables_dir=root / "results" / "tables",
                                   figures_dir=root / "figures", claims_csv=root / "results" / "claims.csv",
                                   claims_forest=root / "results" / "claims_forest.png")
    finally:
        os.chdir(before)
    return root, page


def data_uri_bytes(uri: str) -> bytes:
    assert uri.startswith("data:"), uri[:80]
    return base64.b64decode(uri.split(",", 1)[1])


def test_complete_report_shows_every_item_with_working_links(complete):
    root, page = complete
    html = page.read_text()
    p = parse(page)
    assert p.sections == [*report.paper_items(), "claims", "provenance"]
    # every image and linked file is inside the page, byte for byte
    expected = [root / "figures" / "fig1.png", root / "figures" / "fig5.png", root / "results" / "claims_forest.png"]
    assert sorted(data_uri_bytes(s) for s in p.srcs) == sorted(f.read_bytes() for f in expected)
    assert all(h.startswith("data:") for h in p.hrefs) and len(p.hrefs) >= 2 * 3 + 2 * 2
    assert (root / "results" / "tables" / "table5.tex").read_bytes() in [data_uri_bytes(h) for h in p.hrefs]
    assert html.count("not rendered yet") == len(report.paper_items()) - 4
    assert "snakemake results/tables/table1a.md" in html  # the command that builds a missing item, from the workdir
    agreement = tabs.agreement(tabs.read_cells(root / "results" / "tables" / "table5.csv"))
    assert agreement.compared == 32 and f"<b>{agreement.within}/{agreement.compared}</b>" in html
    assert 'class="agree"' in html


def test_the_page_names_no_absolute_path_of_the_machine(complete):
    root, page = complete
    html = page.read_text()
    assert str(root) not in html and str(Path.home()) + "/" not in html
    assert "<code>config.yaml</code>" in html  # the config, relative to the workdir


def test_the_index_says_which_items_no_experiment_feeds(complete):
    _, page = complete
    html = page.read_text()
    index = html[html.index("<table class=\"summary\">"):html.index("</table>")]
    row = lambda name: next(r for r in index.split("<tr>") if f"href='#{name}'" in r)  # noqa: E731
    assert report.NO_FEEDER in row("table16") and "rendered" not in row("table16")  # rendered, but from nothing
    assert report.NO_FEEDER in row("fig1") and report.NO_FEEDER not in row("table5")
    assert ">rendered<" in row("table5") and ">rendered<" in row("fig5")


def test_complete_report_shows_each_claim_beside_the_papers_statement(complete):
    """The claims section is rendered from results/claims.csv: our effect and CI, the paper's words, the verdict."""
    root, page = complete
    html = page.read_text()
    table = claims_mod.read_claims_table(root / "results" / "claims.csv")
    section = html[html.index("<section id=\"claims\">"):html.index("<section id=\"provenance\">")]
    assert section.count("<tr class=") == len(table) == len(claims_mod.load_claims())
    row = table.set_index("id").loc["t5.firm_gt_ntxent.auroc.cifar10"]
    assert row["verdict"] in ("supported", "not significant", "contradicted")  # the paper's own rows, 2 seeds
    line = next(x for x in section.split("<tr ") if "t5.firm_gt_ntxent.auroc.cifar10</b>" in x)
    assert "FIRM consistently outperforms NT-Xent" in line and f"{row['estimate']:+.2f}%" in line
    assert f"[{row['ci_low']:+.2f}%, {row['ci_high']:+.2f}%]" in line and row["verdict"] in line
    assert "not run: no runs in the summaries" in section  # the claims of tables this workdir did not run
    hrefs = re.findall(r"href='(data:[^']+)' download='([^']+)'", section)
    assert {n for _, n in hrefs} == {"claims.md", "claims.csv", "claims_forest.png", "claims_forest.pdf"}
    assert data_uri_bytes(dict((n, u) for u, n in hrefs)["claims.md"]) == (root / "results" / "claims.md").read_bytes()


def test_a_report_without_the_claims_says_how_to_build_them(complete, tmp_path):
    root, _ = complete
    page = report.build_report(root / "config.yaml", tmp_path / "index.html", summary_dir=root / "results" / "summary",
                               tables_dir=root / "results" / "tables", figures_dir=root / "figures",
                               claims_csv=tmp_path / "absent" / "claims.csv")
    html = page.read_text()
    assert "<section id='claims'>" in html and "absent/claims.md" in html


def test_complete_report_states_the_provenance(complete):
    _, page = complete
    html = page.read_text()
    for text in ("abc1234", "NVIDIA H100", "2.14.1", "onecycle", "BN momentum 0.9", "checkpoint last epoch",
                 "Wall-clock per run", "<code>paper</code>"):
        assert text in html, text


def test_partial_report_renders_everything_and_marks_the_rest_pending(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mini.yaml"
    config.write_text(yaml.safe_dump({"preset": "mini", "seeds": [0], "experiments": {
        "table5": {"datasets": ["fmnist_mini"], "classes": [0], "losses": ["ntxent", "firm"], "scores": ["cos"]}}}))
    monkeypatch.setitem(figs.FIGURES.get("fig2").params, "steps", 5)
    complete_page = tmp_path / "report" / "index.html"
    complete_page.parent.mkdir()
    complete_page.write_text("the complete report")
    page = report.build_report(config, complete_page, partial=True)
    assert page == tmp_path / "report" / "partial" / "index.html"
    assert complete_page.read_text() == "the complete report"  # a partial view never replaces it
    for name in tabs.TABLES.names():
        assert (tmp_path / "report" / "partial" / "tables" / f"{name}.md").is_file()
    for name in figs.FIGURES.names():
        assert (tmp_path / "report" / "partial" / "figures" / f"{name}.pdf").is_file()
    p = parse(page)
    assert len(p.srcs) == len(figs.FIGURES) + 1
    assert data_uri_bytes(p.srcs[-1]) == (tmp_path / "report" / "partial" / "claims_forest.png").read_bytes()
    html = page.read_text()
    assert "Partial view: 0 of 2 runs" in html and "pending" in html
    claims = claims_mod.read_claims_table(tmp_path / "report" / "partial" / "claims.csv")
    assert set(claims["verdict"]) == {"pending"}  # nothing has finished: every claim waits
    assert "Interim" in (tmp_path / "report" / "partial" / "claims.md").read_text()
    cells = tabs.read_cells(tmp_path / "report" / "partial" / "tables" / "table5.csv")
    assert set(cells.loc[cells["row"].isin(["NT-Xent cos", "FIRM cos"]), "ours_status"]) >= {"pending"}
    assert not (tmp_path / "results" / "tables").exists()  # the workflow's own outputs are untouched


def test_cli(complete, tmp_path):
    root, _ = complete
    parser = build_parser()
    args = parser.parse_args(["report", "--config", str(root / "config.yaml"), "--out", str(tmp_path / "r.html"),
                              "--summary-dir", str(root / "results" / "summary"), "--tables-dir",
                              str(root / "results" / "tables"), "--figures-dir", str(root / "figures"),
                              "--tolerance", "5", "--claims-csv", str(root / "results" / "claims.csv")])
    assert args.func(args) == 0
    assert "≤ 5.0 AUROC point" in (tmp_path / "r.html").read_text()
    assert "t5.firm_gt_ntxent.auroc.cifar10" in (tmp_path / "r.html").read_text()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=5000"]


def chromium(page: Path, *args: str) -> str:
    """Run headless Chromium on ``page`` (its own empty profile; no network needed) and return stdout."""
    profile = page.parent / ".chromium-profile"
    proc = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def chromium_dom(page: Path) -> str:
    return chromium(page, "--dump-dom")


def figure_screenshot(page: Path, section: str, width: int = 1400, height: int = 1200):
    """The pixels (RGB array) of ``section``'s image as Chromium paints the page, the rest of the page hidden.

    Only CSS is added (the image bytes are the page's own): everything but
    the section's ``<img>`` is hidden, so the image is painted at the top left
    of the viewport, whatever its place in the long page.
    """
    import numpy as np
    from PIL import Image

    html = page.read_text()
    css = (f"<style>body>*:not(#{section}),#{section}>*:not(img){{display:none!important}}"
           f"body,#{section}{{margin:0!important;padding:0!important}}img{{border:0!important;display:block}}</style>")
    shot_page = page.with_name(f"shot_{page.stem}_{section}.html")
    shot_page.write_text(html.replace("</head>", css + "</head>", 1))
    shot = page.with_name(f"shot_{page.stem}_{section}.png")
    chromium(shot_page, f"--window-size={width},{height}", f"--screenshot={shot}")
    shot_page.unlink()
    return np.asarray(Image.open(shot).convert("RGB")).astype(float)


def painted_matches(shot, png: bytes) -> float:
    """Mean absolute difference (0-255) between the painted image (at the top left) and the embedded PNG, scaled as
    the page scales it (``img{max-width:100%}``)."""
    import numpy as np
    from PIL import Image

    ink = np.argwhere((shot < 250).any(axis=-1))
    assert len(ink), "nothing painted: the figure is not visible"
    img = Image.open(io.BytesIO(png)).convert("RGB")
    scale = shot.shape[1] / img.width if img.width > shot.shape[1] else 1.0  # img{max-width:100%}
    w, h = round(img.width * scale), round(img.height * scale)
    ref = np.asarray(img.resize((w, h), Image.LANCZOS)).astype(float)
    h = min(h, shot.shape[0])
    return float(np.abs(shot[:h, :w] - ref[:h]).mean())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_moved_to_an_empty_folder_shows_every_figure_in_a_headless_browser(complete, tmp_path):
    """The page alone, moved away from every file it was made from, paints each figure: pixels, not a load event."""
    _, page = complete
    moved = tmp_path / "elsewhere" / "report.html"
    moved.parent.mkdir()
    shutil.copy(page, moved)
    assert sorted(p.name for p in moved.parent.iterdir()) == ["report.html"]
    dom = chromium_dom(moved)
    assert 'data-broken-images="0"' in dom, dom[:500]
    assert "FIRM replication report" in dom
    parts = re.split(r"""<section id=['"]([^'"]+)['"]""", moved.read_text())[1:]
    srcs = {sec: re.search(r'<img src="([^"]+)"', chunk)[1] for sec, chunk in zip(parts[::2], parts[1::2])
            if "<img " in chunk}
    assert sorted(srcs) == ["claims", "fig1", "fig5"]
    shots = {}
    for sec, src in srcs.items():
        shots[sec] = figure_screenshot(moved, sec)
        assert painted_matches(shots[sec], data_uri_bytes(src)) < 3, sec  # measured: about 0.5
    # control: the pixels tell the figures apart (fig5 painted is not fig1's picture)
    assert painted_matches(shots["fig5"], data_uri_bytes(srcs["fig1"])) > 2 * painted_matches(
        shots["fig5"], data_uri_bytes(srcs["fig5"]))
    # control: a page whose image is gone is flagged and paints nothing there
    broken = moved.with_name("broken.html")
    broken.write_text(moved.read_text().replace(srcs["fig5"], "../figures/fig5.png"))
    assert 'data-broken-images="1"' in chromium_dom(broken)
    assert (figure_screenshot(broken, "fig5") >= 250).all(axis=-1).mean() > 0.99


@pytest.mark.slow
def test_the_mini_workflow_report_waits_for_every_table_and_figure_its_experiments_feed(tmp_path):
    """The report target plans the paper tables and figures some experiment of the config feeds (the mini config:
    all but six) and those drawn without runs (Figure 2), the claims and the page; it waits for no item that would
    show only 'not run' cells."""
    from tests.helpers.snakemake import CONFIGS, job_stats, snakemake

    out = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", CONFIGS / "mini.yaml", "--",
                    "results/report/index.html").stdout
    stats = job_stats(out)
    feeders = report.paper_item_feeders(yaml.safe_load((CONFIGS / "mini.yaml").read_text()))
    fed = {name for name, exps in feeders.items() if exps}
    assert len(fed) == len(feeders) - 6 and "table2" not in fed and "table5" in fed  # mini: no MVTec, no OOD, ...
    assert stats["paper_table"] == len(fed & set(tabs.TABLES.names()))
    assert stats["paper_figure"] == len((fed | {"fig2"}) & set(figs.FIGURES.names()))
    assert "fig2" not in fed and stats["paper_figure"] == len(fed & set(figs.FIGURES.names())) + 1
    assert (stats["report"], stats["claims"]) == (1, 1)


def test_partial_report_marks_a_damaged_run_and_renders_the_rest(tmp_path, monkeypatch):
    """A truncated metrics.json of one run is one 'damaged' cell naming the file, not an aborted report."""
    from firm_bench.core import rundir as runs
    from firm_bench.planning import grid
    from firm_bench.records.metrics import recipe_labels
    from firm_bench.records.summary import experiment_rows

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mini.yaml"
    config.write_text(yaml.safe_dump({"preset": "mini", "seeds": [0], "experiments": {
        "table5": {"datasets": ["fmnist_mini"], "classes": [0], "losses": ["ntxent", "firm"], "scores": ["cos"]}}}))
    monkeypatch.setitem(figs.FIGURES.get("fig2").params, "steps", 5)
    plan = grid.plan(grid.load_workflow_config(config))
    for run in plan.experiments["table5"]:
        run_dir = Path(run.path(plan.config["runs_root"]))
        runs.write_status(run_dir, "ok")
        metrics = {"recipe": recipe_labels(grid.run_config(plan, run)), "aulc": 0.8, "evalsets": {"test": {
            "cos_k5": {"score": "cos", "k": 5, "status": "ok", "auroc": 0.9, "reason": None, "untrained_auroc": 0.6}}}}
        runs.atomic_write_json(run_dir / runs.METRICS_FILE, metrics)
        if run.loss == "firm":
            damaged = run_dir / runs.METRICS_FILE
            damaged.write_bytes(damaged.read_bytes()[:200])
    page = report.build_report(config, tmp_path / "report" / "index.html", partial=True)
    cells = tabs.read_cells(tmp_path / "report" / "partial" / "tables" / "table5.csv")
    firm, ntxent = (cells[(cells["row"] == row) & (cells["kind"] == "value")] for row in ("FIRM cos", "NT-Xent cos"))
    assert "damaged" in set(firm["ours_status"]) and "ok" not in set(firm["ours_status"])  # others: "not run"
    rows = experiment_rows("table5", plan.run_dirs("table5"), ["cos"], [5])  # the reason: in the summary
    reason = rows.loc[rows["loss"] == "firm", "reason"].item()
    assert f"{damaged} (the run's metrics) is damaged" in reason and "firm-bench metrics" in reason
    assert "ok" in set(ntxent["ours_status"]) and 90.0 in set(ntxent["ours_mean"].round(3))
    assert "Partial view: 1 of 2 runs" in page.read_text()


def test_the_page_shows_a_reader_no_artefact(complete):
    """No None / nan / float counts / docstring markup in the page text (the embedded files left out)."""
    from tests.paper.test_reader_text import leaks

    _, page = complete
    text = re.sub(r"data:[^'\"]+", "", page.read_text())
    assert leaks(text) == []
