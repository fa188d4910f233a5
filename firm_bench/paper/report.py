"""The replication report: one offline HTML page with every paper table and figure.

``firm-bench report`` writes ``results/report/index.html``: for each paper
table (``firm_bench.paper.tables.TABLES``) ours beside the paper's with the cells
within the tolerance (default 1.0 AUROC point) counted and highlighted, each
paper figure (``firm_bench.paper.figures.FIGURES``), the paper's claims checked
(``firm_bench.paper.claims``: each claim with our effect and 95 % interval
beside the paper's statement, its verdict, and the forest plot), and the
provenance of the runs:
git commit, config and preset, recipe options (schedule, checkpoint choice,
BN momentum, ...), library versions, hardware (each run's ``versions.json``)
and wall-clock per run. The page is one self-contained file: every image and
every linked table file (.md/.tex/.csv, figure PDFs) is embedded as a data URI
(:func:`self_contained`), nothing is loaded from the network or from beside
the file, so it can be moved or mailed and still shows every figure; a small
inline script flags any image that fails to load. Paths are shown relative to
the working directory (:func:`shown_path`), never as absolute paths of the
machine that wrote the page.

Two modes:

- complete (the Snakemake ``report`` rule): reads what the workflow rendered,
  ``results/tables/<table>.csv``, ``figures/<figure>.png`` and
  ``results/claims.csv`` (with ``results/claims_forest.png``); an item not
  rendered yet is shown as such, with the command that builds it.
- ``--partial``: while runs are still going, summarises every experiment of the
  config afresh from the run directories that exist (finished runs give
  numbers, the others read "pending"), renders every table, figure and the
  claims into ``<report dir>/partial/`` (never into the workflow's own outputs)
  and writes its page there too, ``<report dir>/partial/index.html``: a
  partial view never replaces the complete report.

Which experiments feed which paper item comes from the workflow config
(:func:`paper_item_feeders`).
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from firm_bench.core import rundir as runs_mod
from firm_bench.core.errors import DamagedFile
from firm_bench.core.facts import paper
from firm_bench.paper import claims as claims_mod
from firm_bench.paper import figures as figs
from firm_bench.paper import tables as tabs
from firm_bench.paper.labels import recipe_label
from firm_bench.planning.grid import paper_item_feeders, paper_items
from firm_bench.records.summary import read_curves, read_summaries

__all__ = ["build_report", "paper_item_feeders", "paper_items", "provenance", "self_contained", "shown_path"]


# --------------------------------------------------------------------------- #
# provenance
# --------------------------------------------------------------------------- #
_VERSION_KEYS = ["firm_bench", "python", "torch", "torchvision", "numpy", "scikit_learn"]
_HARDWARE_KEYS = ["device", "gpu", "cuda", "platform", "processor", "cpu_count", "torch_threads"]


def _counts(values: Sequence) -> str:
    """'a (3 runs), b (1 run)' for the distinct values."""
    s = pd.Series([str(v) for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))])
    if s.empty:
        return "unknown"
    return ", ".join(f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in s.value_counts().items())


def provenance(summary: pd.DataFrame) -> dict:
    """Where the numbers come from: per-run versions.json, recipe labels and wall-clock, summarised.

    Returns {"runs": one row per run (run_dir, recipe, status, train_seconds,
    device, gpu, git_commit), "commits", "versions", "hardware", "recipes"}.
    """
    runs = summary.drop_duplicates("run_dir") if not summary.empty else summary
    status = summary.groupby("run_dir")["status"].agg(lambda s: tabs.combined_status(list(s))) if len(runs) else {}
    records = []
    for row in runs.to_dict("records"):
        path = Path(row["run_dir"]) / "versions.json"
        try:
            info = runs_mod.read_json(path) if path.is_file() else {}
        except DamagedFile:  # provenance unknown for this run; its cells render
            info = {}
        records.append({"run_dir": row["run_dir"], "recipe": row["recipe"], "status": status[row["run_dir"]],
                        "train_seconds": row.get("train_seconds"), "epochs": row.get("epochs"), **info})
    table = pd.DataFrame(records).sort_values("run_dir") if records else pd.DataFrame(columns=["run_dir", "status"])
    col = lambda c: list(table[c]) if c in table else []  # noqa: E731
    return {
        "runs": table,
        "commits": _counts(col("git_commit")),
        "versions": {k: _counts(col(k)) for k in _VERSION_KEYS},
        "hardware": {k: _counts(col(k)) for k in _HARDWARE_KEYS if k in table},
        "recipes": recipe_label(runs),
    }


# --------------------------------------------------------------------------- #
# gathering the items
# --------------------------------------------------------------------------- #
@dataclass
class _Item:
    name: str
    title: str
    doc: str
    feeders: list[str]
    kind: str  # table | figure
    html: str = ""
    links: tuple[tuple[str, str], ...] = ()
    agreement: tabs.Agreement | None = None
    state: str = "rendered"  # rendered | not rendered | NO_FEEDER

    @property
    def shows_results(self) -> bool:
        """Whether the item shows something of this config: an experiment feeds it, or it needs no runs."""
        return bool(self.feeders) or self.name in paper.RUNLESS

    def fed_by(self, none: str) -> str:
        """The experiments feeding the item, in words (``none`` when nothing does)."""
        if self.name in paper.RUNLESS:
            return f"no runs needed ({paper.RUNLESS[self.name]})"
        return ", ".join(self.feeders) or none

    def not_rendered(self, target: Path) -> _Item:
        """Mark the item as not rendered yet, with the command that builds it."""
        self.state = "not rendered"
        self.html = f"<p class='missing'>not rendered yet: <code>snakemake {html.escape(shown_path(target))}</code></p>"
        return self


#: the index state of a paper item no experiment of the config feeds (its table or figure, if rendered, is empty)
NO_FEEDER = "no experiment feeds it"


def shown_path(path: str | Path) -> str:
    """How the page names a file: relative to the working directory where it lies below it, else with
    the home directory as ``~``; an absolute path outside both is shown from its last three parts (``…/a/b/c``)."""
    p = Path(os.path.abspath(path))
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + p.relative_to(base).as_posix()
        except ValueError:
            continue
    return "…/" + "/".join(p.parts[-3:]) if Path(path).is_absolute() else Path(path).as_posix()


_LOCAL_REF = re.compile(r"""(?P<attr>src|href)=(?P<q>['"])(?P<ref>(?!data:|https?:|#|mailto:)[^'"]+)(?P=q)""")


def self_contained(page: str, page_dir: Path) -> str:
    """The page with every local ``src``/``href`` (relative to ``page_dir``) replaced by the file as a data URI.

    Images show from the page alone; a linked file (table .md/.tex/.csv, a
    figure's PDF) becomes a download of the embedded bytes. A reference to a
    file that does not exist raises: the page would otherwise show a hole.
    """
    def embed(m: re.Match) -> str:
        path = Path(os.path.normpath(page_dir / html.unescape(m["ref"])))
        if not path.is_file():
            raise FileNotFoundError(f"the report links {m['ref']!r} ({shown_path(path)}), which does not exist")
        mime = mimetypes.guess_type(path.name)[0] or "text/plain"
        if mime.startswith("text/") or path.suffix in (".md", ".tex", ".csv"):
            mime = f"{mime if mime.startswith('text/') else 'text/plain'};charset=utf-8"
        uri = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        download = f" download={m['q']}{html.escape(path.name)}{m['q']}" if m["attr"] == "href" else ""
        return f"{m['attr']}={m['q']}{uri}{m['q']}{download}"

    return _LOCAL_REF.sub(embed, page)


def _summaries_fresh(config: Mapping, experiments: Sequence[str]) -> tuple[dict, dict]:
    """Experiment summaries and curves read afresh from the run directories (partial view)."""
    from firm_bench.planning import grid as fw
    from firm_bench.records import summary

    plan = fw.plan(config, only=experiments)
    rows, curves = {}, {}
    for exp in plan.experiments:
        run_dirs = list(dict.fromkeys(plan.run_dirs(exp)))
        spec = plan.config["experiments"][exp]
        rows[exp] = summary.experiment_rows(exp, run_dirs, spec["scores"], spec["k"],
                                            evalsets=plan.experiment_evalsets(exp))
        curves[exp] = summary.experiment_curves(exp, run_dirs)
    return rows, curves


def _summaries_on_disk(summary_dir: Path, experiments: Sequence[str]) -> tuple[dict, dict]:
    """The workflow's experiment summaries and curves that exist."""
    rows, curves = {}, {}
    for exp in experiments:
        path, curve_path = summary_dir / f"{exp}.csv", summary_dir / f"{exp}_curves.csv"
        if path.is_file():
            rows[exp] = read_summaries([path])
        if curve_path.is_file():
            curves[exp] = read_curves([curve_path])
    return rows, curves


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _table_item(item: _Item, cells_path: Path, page_dir: Path, tolerance: float) -> _Item:
    spec = tabs.TABLES.get(item.name)
    if not cells_path.is_file():
        return item.not_rendered(cells_path.with_suffix(".md"))
    cells = tabs.read_cells(cells_path)
    item.agreement = tabs.agreement(cells, tolerance)
    item.html = tabs.render(spec, cells, "html", tolerance)
    item.links = tuple((ext, _rel(cells_path.with_suffix(f".{ext}"), page_dir)) for ext in ("md", "tex", "csv"))
    return item


def _figure_item(item: _Item, png: Path, page_dir: Path) -> _Item:
    if not png.is_file():
        return item.not_rendered(png)
    src = _rel(png, page_dir)
    item.html = f'<img src="{html.escape(src)}" alt="{html.escape(item.title)}">'
    item.links = (("png", src), ("pdf", _rel(png.with_suffix(".pdf"), page_dir)))
    return item


def _claims_section(claims_csv: Path, forest: Path, page_dir: Path) -> tuple[str, str]:
    """The claims section (from the claims table the workflow or the partial view wrote) and its summary line."""
    md = claims_csv.with_suffix(".md")
    if not claims_csv.is_file():
        return (f"<section id='claims'><h2>The paper's claims, checked</h2><p class='missing'>not rendered yet: "
                f"<code>snakemake {html.escape(str(md))}</code> (or <code>firm-bench claims</code>)</p></section>",
                "not rendered")
    table = claims_mod.read_claims_table(claims_csv)
    links = [("md", _rel(md, page_dir)), ("csv", _rel(claims_csv, page_dir))]
    href = _rel(forest, page_dir) if forest.is_file() else None
    if href:
        links += [("forest png", href), ("forest pdf", _rel(forest.with_suffix(".pdf"), page_dir))]
    state = claims_mod.verdict_counts(table)  # the paper's claims and our learning checks counted apart
    if claims_mod.stand_in_only(table):
        state += f" ({claims_mod.STAND_IN_LABEL})"
    return claims_mod.claims_html(table, forest_href=href, links=links), state


# --------------------------------------------------------------------------- #
# the page
# --------------------------------------------------------------------------- #
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 5px;white-space:nowrap}
th{background:#f2f2f2}.agree{background:#c8f0c8}.disagree{background:#f6c6c6}.stand_in{color:#777}
.caption{font-size:13px;color:#444}ul.notes{font-size:12px;color:#444;margin:.3em 0;padding-left:1.4em}.missing{color:#a60}section{margin:2em 0;overflow-x:auto}
img{max-width:100%;border:1px solid #ddd}.broken{display:none;background:#f6c6c6;padding:.5em}
.summary td.num{text-align:right}code{background:#f4f4f4;padding:0 3px}
table.claims td{white-space:normal;vertical-align:top;min-width:6em;max-width:36em}
tr.supported td:last-child{background:#c8f0c8}tr.contradicted td:last-child{background:#f6c6c6}
"""
# Marks the page when an image fails to load (the headless-browser test reads data-broken-images).
_SCRIPT = """
window.addEventListener('load', function () {
  var bad = Array.prototype.filter.call(document.images, function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-broken-images', String(bad.length));
  if (bad.length) { var b = document.getElementById('broken'); b.style.display = 'block';
    b.textContent = bad.length + ' image(s) failed to load: ' + bad.map(function (i) { return i.getAttribute('src'); }).join(', '); }
});
"""


def _page(items: list[_Item], prov: dict, meta: dict, tolerance: float, claims: tuple[str, str] = ("", "")) -> str:
    esc = html.escape
    compared = [i.agreement for i in items if i.agreement is not None]
    within, total = sum(a.within for a in compared), sum(a.compared for a in compared)
    rows = []
    for i in items:
        agree = (f"{i.agreement.within}/{i.agreement.compared}" if i.agreement and i.agreement.compared
                 else ("–" if i.kind == "table" else ""))
        cls = "" if not (i.agreement and i.agreement.compared) else (
            "agree" if i.agreement.within == i.agreement.compared else "disagree")
        rows.append(f"<tr><td><a href='#{i.name}'>{esc(i.name)}</a></td><td>{esc(i.title)}</td>"
                    f"<td>{esc(i.fed_by('none in this config'))}</td>"
                    f"<td class='num {cls}'>{agree}</td><td>{esc(i.state if i.shows_results else NO_FEEDER)}</td></tr>")
    claims_html, claims_state = claims
    if claims_html:
        rows.append("<tr><td><a href='#claims'>claims</a></td><td>The paper's claims, checked</td>"
                    f"<td>all</td><td></td><td>{esc(claims_state)}</td></tr>")
    sections = []
    for i in items:
        links = " · ".join(f"<a href='{esc(href)}'>{esc(ext)}</a>" for ext, href in i.links)
        if not i.shows_results:
            links = f"{NO_FEEDER}: it shows no results of this config. {links}"
        body = esc(i.doc)
        sections.append(f"<section id='{i.name}'><h2>{esc(i.title)}</h2><p class='caption'>{body}</p>"
                        f"<p class='caption'>Fed by: {esc(i.fed_by('no experiment of this config'))}. "
                        f"{links}</p>{i.html}</section>")
    runs = prov["runs"]
    seconds = pd.to_numeric(runs["train_seconds"], errors="coerce") if "train_seconds" in runs else pd.Series(dtype=float)
    known = lambda v: isinstance(v, str) and bool(v)  # noqa: E731  (a run without versions.json: NaN columns)
    run_rows = "".join(
        "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in (
            shown_path(r["run_dir"]), r["status"], "unknown" if pd.isna(s) else f"{s:.0f}",
            next((r[c] for c in ("gpu", "device") if known(r.get(c))), "unknown"),
            r["git_commit"] if known(r.get("git_commit")) else "unknown"))
        + "</tr>" for r, s in zip(runs.to_dict("records"), seconds))
    kv = lambda d: "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in d.items())  # noqa: E731
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>firm-bench replication report</title>
<style>{_CSS}</style><script>{_SCRIPT}</script></head>
<body data-broken-images="unknown">
<h1>FIRM replication report</h1>
<p id="broken" class="broken"></p>
<p>{esc(meta['mode'])}. Generated {esc(meta['time'])} from config <code>{esc(meta['config'])}</code> (preset
<code>{esc(meta['preset'])}</code>). Tables: ours (mean ± std over seeds) beside the paper's reported values
(firm_bench/paper/reported_results.csv; inferred labels in firm_bench/paper/NOTES.md); a cell agrees when
|ours − paper| ≤ {tolerance:.1f} AUROC point. Overall: <b>{within}/{total}</b> compared cells agree.</p>
<table class="summary"><tr><th>item</th><th>paper item</th><th>experiments</th><th>agreement</th><th>state</th></tr>
{''.join(rows)}</table>
{''.join(sections)}
{claims_html}
<section id="provenance"><h2>Provenance</h2>
<table>{kv({'code now': meta['commit'], 'code of the runs': prov['commits'], 'config': meta['config'],
            'preset': meta['preset'], 'recipes': prov['recipes']})}</table>
<h3>Library versions</h3><table>{kv(prov['versions'])}</table>
<h3>Hardware</h3><table>{kv(prov['hardware'])}</table>
<details><summary>Wall-clock per run ({len(runs)} runs, {seconds.sum() / 3600:.2f} h of training in total)</summary>
<table><tr><th>run</th><th>status</th><th>train s</th><th>device</th><th>commit</th></tr>{run_rows}</table></details>
</section></body></html>
"""


def build_report(
    config_path: str | Path,
    out: str | Path = "results/report/index.html",
    *,
    summary_dir: str | Path = "results/summary",
    tables_dir: str | Path = "results/tables",
    figures_dir: str | Path = "figures",
    partial: bool = False,
    tolerance: float = tabs.DEFAULT_TOLERANCE,
    threads: int = 1,
    claims_csv: str | Path = "results/claims.csv",
    claims_forest: str | Path = "results/claims_forest.png",
) -> Path:
    """Write the report page (and, with ``partial``, the tables, figures and claims it shows); returns its path."""
    from firm_bench.planning import grid as fw

    config = fw.validate_config(fw.load_workflow_config(config_path))
    claims_csv, claims_forest = Path(claims_csv), Path(claims_forest)
    feeders = paper_item_feeders(config)
    out = Path(out)
    experiments = list(config["experiments"])
    if partial:  # its own page beside what it renders: the complete report is never replaced
        out = out.parent / "partial" / out.name
        rows, curves = _summaries_fresh(config, experiments)
        tables_dir, figures_dir = out.parent / "tables", out.parent / "figures"
        for name in tabs.TABLES.names():
            tabs.write_table(name, _concat([rows[e] for e in feeders[name]]), tables_dir, tolerance=tolerance,
                             partial=True)
        for name in figs.FIGURES.names():
            figs.write_figure(name, _concat([rows[e] for e in feeders[name]]),
                              _concat([curves[e] for e in feeders[name]]), figures_dir, threads=threads, partial=True)
        claims_dir = out.parent
        claims_csv, claims_forest = claims_dir / "claims.csv", claims_dir / "claims_forest.png"
        claims_mod.write_claims(_concat(list(rows.values())), _concat(list(curves.values())),
                                claims_dir / "claims.md", claims_csv, claims_forest, partial=True,
                                plan=fw.plan(config), config_label=shown_path(config_path))
    else:
        rows, _ = _summaries_on_disk(Path(summary_dir), experiments)
    items = []
    for name in paper_items():
        kind = "table" if name in tabs.TABLES else "figure"
        spec = tabs.TABLES.get(name) if kind == "table" else figs.FIGURES.get(name)
        item = _Item(name, paper.title(name), spec.doc, feeders[name], kind)
        items.append(_table_item(item, Path(tables_dir) / f"{name}.csv", out.parent, tolerance) if kind == "table"
                     else _figure_item(item, Path(figures_dir) / f"{name}.png", out.parent))
    summary = _concat(list(rows.values()))
    n_runs = summary["run_dir"].nunique() if not summary.empty else 0
    n_done = summary.loc[summary["status"] == "ok", "run_dir"].nunique() if not summary.empty else 0
    meta = {
        "mode": (f"Partial view: {n_done} of {n_runs} runs have results; the rest read 'pending'" if partial
                 else f"Complete view of {n_runs} runs"),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"), "config": shown_path(config_path), "preset": config["preset"],
        "commit": runs_mod.git_commit() or "unknown",
    }
    claims = _claims_section(claims_csv, claims_forest, out.parent)
    page = self_contained(_page(items, provenance(summary), meta, tolerance, claims), out.parent)
    return runs_mod.atomic_write_text(out, _hide_local_paths(page))


def _hide_local_paths(page: str) -> str:
    """The page with the working directory and home directory prefixes of any remaining path text removed."""
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        for text in {str(base), html.escape(str(base))}:
            if len(text) > 1:
                page = page.replace(text.rstrip("/") + "/", prefix)
    return page
