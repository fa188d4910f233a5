"""firm_bench.paper.figures: every paper figure draws from synthetic results; Figure 2 is our own losses."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from firm_bench.cli import build_parser
from firm_bench.core.rundir import cache_path
from firm_bench.method.losses import get_loss
from firm_bench.method.scores import FeatureCache
from firm_bench.paper import figures as figs
from firm_bench.paper.figures.curves import class_mean_curves
from firm_bench.paper.figures.landscape import constructed_batch, landscape
from firm_bench.paper.figures.sweep import sweep_rows
from tests.helpers.summaries import summary


# --------------------------------------------------------------------------- #
# Figure 2: the landscape is our loss on the constructed batch
# --------------------------------------------------------------------------- #
def hand_batch(s_in: float, s_out: float, n_id: int = 4, n_out: int = 4):
    """Unit vectors with the prescribed similarities, built another way than constructed_batch.

    s >= 0: x_i = sqrt(s) u + sqrt(1 - s) e_i (shared direction u plus private
    orthogonal directions). s = -1 / (n - 1): the vertices of a regular simplex,
    e_i - mean(e), normalised. The two groups use disjoint coordinates.
    """
    dim = 2 + n_id + n_out
    basis = torch.eye(dim, dtype=torch.float64)

    def group(s, n, shared, private):
        if s >= 0:
            return s ** 0.5 * basis[shared] + (1 - s) ** 0.5 * basis[private : private + n]
        assert s == pytest.approx(-1 / (n - 1))
        e = basis[private : private + n]
        v = e - e.mean(dim=0)
        return v / v.norm(dim=1, keepdim=True)

    z = torch.cat([group(s_in, n_id, 0, 2), group(s_out, n_out, 1, 2 + n_id)])
    return z, torch.tensor([0] * n_id + [1] * n_out)


@pytest.mark.parametrize("loss", ["ntxent", "supcon", "firm"])
def test_landscape_equals_the_loss_computed_directly(loss):
    s_in, s_out = [-1 / 3, 0.0, 0.5, 1.0], [-1 / 3, 0.25, 1.0]
    grid = landscape(loss, s_in, s_out)
    fn = get_loss(loss)
    for (i, a), (j, b) in itertools.product(enumerate(s_in), enumerate(s_out)):
        z, labels = hand_batch(a, b)
        assert grid[i, j] == pytest.approx(float(fn(z, z, labels)), abs=1e-9), (a, b)


def test_landscape_uses_each_loss_in_its_reference_form():
    s = [-1 / 3, 0.5, 1.0]
    z, labels = hand_batch(0.5, 0.5)  # the grid's point [1, 1]
    # SupCon as the reference ran it: concat (SupContrast L_out); NT-Xent and FIRM pairwise
    for loss, form, other in (("supcon", "concat", "pairwise"), ("ntxent", "pairwise", "concat"),
                              ("firm", "pairwise", "concat")):
        grid = landscape(loss, s, s)
        assert grid[1, 1] == pytest.approx(float(get_loss(loss, form=form)(z, z, labels)), abs=1e-9)
        assert grid[1, 1] != pytest.approx(float(get_loss(loss, form=other)(z, z, labels)), abs=1e-6)
        assert np.allclose(landscape(loss, s, s, form=other)[1, 1], float(get_loss(loss, form=other)(z, z, labels)))


def test_fig2_says_which_form_each_panel_used(monkeypatch):
    monkeypatch.setitem(figs.FIGURES.get("fig2").params, "steps", 3)
    fig = figs.draw("fig2", figs.FigureData(pd.DataFrame(), pd.DataFrame()))
    note = fig._supxlabel.get_text().replace("\n", " ")
    assert "NT-Xent pairwise (N×N), SupCon concat (2N×2N), FIRM pairwise (N×N)" in note
    assert "pairwise form" not in note
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["NT-Xent (pairwise)", "SupCon (concat)",
                                                                     "FIRM (pairwise)"]


def test_constructed_batch_has_the_prescribed_similarities():
    z, labels = constructed_batch(0.3, -0.2, n_id=3, n_out=5)
    gram = z @ z.T
    assert torch.allclose(torch.diagonal(gram), torch.ones(8, dtype=z.dtype))
    assert torch.allclose(gram[0, 1:3], torch.tensor([0.3, 0.3], dtype=z.dtype))
    assert torch.allclose(gram[3, 4:], torch.full((4,), -0.2, dtype=z.dtype))
    assert torch.allclose(gram[:3, 3:], torch.zeros(3, 5, dtype=z.dtype), atol=1e-12)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="s_out=-0.5"):
        constructed_batch(0.0, -0.5, n_out=4)


def test_landscape_minima_are_where_the_paper_says():
    s = np.linspace(-1 / 3, 1, 9)
    argmin = {loss: np.unravel_index(np.argmin(landscape(loss, s, s)), (9, 9)) for loss in ("ntxent", "supcon", "firm")}
    assert argmin["ntxent"] == (0, 0)  # inliers and outliers spread
    assert argmin["supcon"] == (8, 8)  # both groups collapse
    assert argmin["firm"] == (8, 0)  # inliers aligned, outliers spread


# --------------------------------------------------------------------------- #
# t-SNE
# --------------------------------------------------------------------------- #
def write_cache(run_dir, n_bank=30, n_test=48, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = torch.zeros(n_test, dtype=torch.int64)
    targets[: n_test // 3] = 1
    test = torch.randn(2, n_test, dim, generator=g) + 4.0 * targets[None, :, None]
    FeatureCache(angles=(0, 90), bank=torch.randn(2, n_bank, dim, generator=g) + 4.0, test=test, test_crops=None,
                 targets=targets).save(cache_path(run_dir))


def test_tsne_is_seeded_and_subsamples_by_class(tmp_path):
    write_cache(tmp_path)
    cache = FeatureCache.load(cache_path(tmp_path))
    x, t = cache.test[0].numpy(), cache.targets.numpy()
    a, idx = figs.tsne_embedding(x, seed=3, max_points=24, targets=t)
    b, _ = figs.tsne_embedding(x, seed=3, max_points=24, targets=t)
    assert a.shape == (24, 2) and np.allclose(a, b)
    assert (t[idx] == 1).sum() == 8  # a third normal, as in the full set
    full, all_idx = figs.tsne_embedding(x, seed=0)
    assert full.shape == (48, 2) and (all_idx == np.arange(48)).all()


# --------------------------------------------------------------------------- #
# every figure from a synthetic fixture
# --------------------------------------------------------------------------- #
def curves(datasets, classes, losses, seeds=(0, 1), epochs=(2, 4, 6)):
    rows = [{"experiment": "e", "dataset": d, "cls": str(c), "loss": loss, "outliers": "rot", "recipe": "paper",
             "seed": s, "epoch": e, "auroc": 0.6 + 0.03 * e + 0.01 * s, "loss_value": 1.0, "elapsed_s": float(e),
             "run_dir": f"results/runs/{d}/{c}/{loss}/rot/paper/seed{s}"}
            for d, c, loss, s, e in itertools.product(datasets, classes, losses, seeds, epochs)]
    return pd.DataFrame(rows)


def sweep():
    """Figure 5's runs, with recipe names that do not say the values (they come from the columns)."""
    base = summary("fig5", ["cifar10"], [0, 2], ["firm"], ["rot"], ["cos", "cos_norm"], recipe="paper")
    taus = [summary("fig5", ["cifar10"], [0, 2], ["firm"], ["rot"], ["cos", "cos_norm"], recipe=f"paper-v{i}", tau=t,
                    auroc=0.8 + t / 4) for i, t in enumerate((0.05, 0.5))]
    sizes = [summary("fig5", ["cifar10"], [0, 2], ["firm"], ["rot"], ["cos", "cos_norm"], recipe=f"paper-w{i}",
                     batch_size=b) for i, b in enumerate((16, 128))]
    return pd.concat([base, *taus, *sizes], ignore_index=True)


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mvtec = summary("fig3", ["mvtec"], ["metal_nut", "screw"], ["ntxent", "supcon", "firm"], ["cutpaste_scar"], ["cos"],
                    seeds=(0,))
    mvtec["run_dir"] = [str(root / d) for d in mvtec["run_dir"]]
    for i, run_dir in enumerate(mvtec["run_dir"].unique()[:-1]):  # the last run has no features
        write_cache(run_dir, seed=i)
    return {
        "curves": (summary("fig4", ["cifar10", "cifar100"], [0, 1], ["ntxent", "supcon", "supcon_star", "firm"],
                           ["rot"], ["cos"]), curves(["cifar10", "cifar100"], [0, 1],
                                                     ["ntxent", "supcon", "supcon_star", "firm"])),
        "tsne": (mvtec, pd.DataFrame()),
        "sweep": (sweep(), pd.DataFrame()),
        "landscape": (pd.DataFrame(), pd.DataFrame()),
    }


@pytest.mark.parametrize("name", figs.FIGURES.names())
def test_every_figure_is_written_as_png_and_pdf(name, fixture_data, tmp_path, monkeypatch):
    spec = figs.FIGURES.get(name)
    assert spec.title.startswith(f"Figure {name.removeprefix('fig')}:"), spec.title
    if spec.kind == "landscape":
        monkeypatch.setitem(spec.params, "steps", 5)  # a coarse grid: the values are tested above
    rows, curve_rows = fixture_data[spec.kind]
    paths = figs.write_figure(name, rows, curve_rows, tmp_path, threads=1)
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("name", [n for n in figs.FIGURES.names() if figs.FIGURES.get(n).kind != "landscape"])
@pytest.mark.parametrize("partial", [False, True])
def test_a_figure_without_runs_says_so(name, partial):
    fig = figs.draw(name, figs.FigureData(summary("e", ["cifar10"], [0], ["firm"], ["rot"], ["cos"]).iloc[0:0],
                                          pd.DataFrame(columns=["dataset", "cls", "loss", "outliers", "recipe", "seed",
                                                                "epoch", "auroc", "run_dir"]), partial=partial))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert ("pending" if partial else "not run") in texts


def test_footer_names_the_loss_forms(fixture_data):
    rows, curve_rows = fixture_data["curves"]
    forms = {"ntxent": "pairwise", "supcon": "concat", "supcon_star": "concat", "firm": "pairwise"}
    fig = figs.draw("fig4", figs.FigureData(rows.assign(loss_form=rows["loss"].map(forms)), curve_rows))
    footer = fig._supxlabel.get_text().replace("\n", " ")
    assert "loss forms: NT-Xent pairwise, SupCon concat, SupCon* concat, FIRM pairwise — as the reference" in footer
    none = figs.draw("fig4", figs.FigureData(rows, curve_rows))  # rows that record no form
    assert "loss forms: unknown" in none._supxlabel.get_text().replace("\n", " ")


def test_sweep_reads_tau_and_batch_size_from_the_columns():
    taus, sizes, note = sweep_rows(sweep(), k=5)
    assert sorted(taus["tau"].unique()) == [0.05, 0.2, 0.5] and set(taus["batch_size"]) == {32}
    assert sorted(sizes["batch_size"].unique()) == [16, 32, 128] and set(sizes["tau"]) == {0.2}
    assert note == "base: tau 0.2, batch size 32"


@pytest.mark.parametrize("partial", [False, True])
def test_a_sweep_whose_runs_have_not_finished_says_so(partial):
    """Planned runs without results (a partial report) carry no tau or batch size: panels say pending / not run."""
    rows = sweep().assign(status="missing", auroc=None, tau=None, batch_size=None)
    assert sweep_rows(rows, k=5)[2] == "no finished runs"
    fig = figs.draw("fig5", figs.FigureData(rows, pd.DataFrame(), partial=partial))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("pending" if partial else "not run") == 4


def test_class_mean_curves_need_every_class():
    c = curves(["cifar10"], [0, 1], ["firm"])
    c = c[~((c["cls"] == "1") & (c["epoch"] == 6))]  # class 1 has not reached epoch 6 yet
    per = class_mean_curves(c)
    assert sorted(per["epoch"].unique()) == [2, 4]
    assert per.loc[(per["seed"] == 0) & (per["epoch"] == 2), "auroc_pct"].iloc[0] == pytest.approx(66.0)


def test_cli_draws_a_figure(tmp_path):
    from firm_bench.records.summary import write_csv

    src = write_csv(sweep(), tmp_path / "fig5.csv")
    parser = build_parser()
    args = parser.parse_args(["figure", "fig5", "--summaries", str(src), "--out-dir", str(tmp_path / "f"), "--threads", "2"])
    assert args.func(args) == 0
    assert (tmp_path / "f" / "fig5.png").is_file() and (tmp_path / "f" / "fig5.pdf").is_file()


# --------------------------------------------------------------------------- #
# Figures 1 and 4: a fixed panel per paper dataset, stand-ins in their dataset's panel
# --------------------------------------------------------------------------- #
PAPER_CURVE_PANELS = ["cifar10", "cifar100", "fashion_mnist", "cats_vs_dogs"]  # Figures 1 and 4 of the paper


@pytest.mark.parametrize("name", ["fig1", "fig4"])
def test_curve_figures_have_a_panel_per_paper_dataset(name):
    assert list(figs.FIGURES.get(name).params["datasets"]) == PAPER_CURVE_PANELS


@pytest.mark.parametrize("partial", [False, True])
def test_curve_panels_are_the_paper_datasets_with_stand_ins_labelled(partial):
    losses = ["supcon", "supcon_star"]
    c = curves(["cifar10", "fmnist_mini", "svhn"], [0, 1], losses)  # svhn: no panel of Figure 1
    rows = summary("fig1", ["cifar10", "fmnist_mini", "svhn"], [0, 1], losses, ["rot"], ["cos"])
    fig = figs.draw("fig1", figs.FigureData(rows, c, partial=partial))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["cifar10", "cifar100", "fashion_mnist\n(stand-in: fmnist_mini)",
                                                "cats_vs_dogs"]
    absent = "pending" if partial else "not run"
    for ax, has_data in zip(panels, [True, False, True, False]):
        texts = [t.get_text() for t in ax.texts]
        assert (len(ax.lines) > 0) == has_data and (absent in texts) == (not has_data), ax.get_title()
    # the stand-in panel draws fmnist_mini's class-mean curve: epoch 2, seeds 0/1 -> mean 66.5
    y = panels[2].lines[0].get_ydata()
    assert y[0] == pytest.approx(66.5)
    footer = " ".join(fig._supxlabel.get_text().split())  # the footer line (figures._note), unwrapped
    assert "fmnist_mini stands in for fashion_mnist" in footer


def test_curve_panels_prefer_the_dataset_itself_over_its_stand_in():
    assert figs.curve_panels(["fashion_mnist", "cifar10"], ["fmnist_mini", "fashion_mnist", "svhn"]) == {
        "fashion_mnist": ("fashion_mnist", False), "cifar10": (None, False)}
    assert figs.curve_panels(["fashion_mnist"], ["fmnist_mini"]) == {"fashion_mnist": ("fmnist_mini", True)}


def test_learning_curves_start_at_the_untrained_encoder():
    """The epoch-0 point (eval.at_start) is drawn, with a dotted baseline at its mean, and the footer says AULC skips it."""
    c = curves(["cifar10"], [0, 1], ["ntxent", "firm"], epochs=(0, 2, 4))
    fig = figs.draw("fig4", figs.FigureData(summary("fig4", ["cifar10"], [0, 1], ["ntxent", "firm"], ["rot"], ["cos"]), c))
    panel = next(ax for ax in fig.axes if ax.get_title() == "cifar10")
    assert min(min(line.get_xdata()) for line in panel.lines if len(line.get_xdata()) > 2) == 0
    dotted = [line for line in panel.lines if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_ydata()[0] == pytest.approx(100 * (0.6 + 0.005))  # mean over seeds 0, 1
    footer = fig._supxlabel.get_text().replace("\n", " ")
    assert "epoch 0 = the untrained encoder" in footer and "left out of AULC" in footer
    plain = figs.draw("fig4", figs.FigureData(summary("fig4", ["cifar10"], [0], ["firm"], ["rot"], ["cos"]),
                                              curves(["cifar10"], [0], ["firm"])))
    assert not [ln for ax in plain.axes for ln in ax.lines if ln.get_linestyle() == ":"]


# --------------------------------------------------------------------------- #
# legends beside the panels, never over them; classes by name
# --------------------------------------------------------------------------- #
#: CIFAR-10's classes in index order, as torchvision lists them (written out here, not read from the facts)
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def laid_out(fig):
    """The figure drawn once on an Agg canvas (constrained layout runs), and its renderer."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from firm_bench.paper.figures.common import RC

    FigureCanvasAgg(fig)
    with matplotlib.rc_context(RC):
        fig.canvas.draw()
    return fig.canvas.get_renderer()


def legend_overlaps(fig) -> list[tuple[str, str]]:
    """(legend title or 'legend', panel title) for every figure legend whose box meets a panel's.

    A panel's box is its tight box: the axes with its title, tick labels and
    axis labels (a legend over a panel's title covers the panel too).
    """
    renderer = laid_out(fig)
    hits = []
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if not ax.get_visible() or not ax.axison:
                continue
            other = ax.get_tightbbox(renderer)
            w = min(box.x1, other.x1) - max(box.x0, other.x0)
            h = min(box.y1, other.y1) - max(box.y0, other.y0)
            if w > 0.5 and h > 0.5:  # more than half a pixel of common area
                hits.append((legend.get_title().get_text() or "legend", ax.get_title()))
    return hits


def test_the_overlap_check_sees_a_legend_over_a_panel(fixture_data):
    rows, _ = fixture_data["sweep"]
    fig = figs.draw("fig5", figs.FigureData(rows, pd.DataFrame()))
    assert legend_overlaps(fig) == []
    handles, labels = fig.legends[0].legend_handles, [t.get_text() for t in fig.legends[0].get_texts()]
    fig.legend(handles, labels, title="over", loc="center")  # in the middle of the figure: over panels (b), (c)
    assert {h[0] for h in legend_overlaps(fig)} == {"over"}


@pytest.mark.parametrize("name", figs.FIGURES.names())
def test_no_legend_covers_a_panel(name, fixture_data, monkeypatch):
    spec = figs.FIGURES.get(name)
    if spec.kind == "landscape":
        monkeypatch.setitem(spec.params, "steps", 5)
    rows, curve_rows = fixture_data[spec.kind]
    fig = figs.draw(name, figs.FigureData(rows, curve_rows))
    assert [ax.get_title() for ax in fig.axes if ax.get_legend() is not None] == []  # no legend inside a panel
    labelled = spec.kind != "landscape" and any(ax.get_legend_handles_labels()[1] for ax in fig.axes)
    assert len(fig.legends) == (1 if labelled else 0)  # the one legend of the figure (Figure 2 has none)
    assert labelled or name in ("fig2", "fig7")  # the fixture has no texture class for Figure 7
    assert legend_overlaps(fig) == [], name
    renderer = fig.canvas.get_renderer()
    for legend in fig.legends:  # and it is on the page
        box, page = legend.get_window_extent(renderer), fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 + 0.5 and page.y0 <= box.y0 and box.y1 <= page.y1 + 0.5


def test_panel_titles_stay_within_their_panel_column(fixture_data):
    """Constrained layout makes no room for a title wider than its panel: Figure 5's would run into the legend."""
    rows, _ = fixture_data["sweep"]
    fig = figs.draw("fig5", figs.FigureData(rows, pd.DataFrame()))
    renderer = laid_out(fig)
    panels = sorted((ax for ax in fig.axes if ax.get_title()), key=lambda a: a.get_position().x0)
    for left, right in zip(panels, panels[1:]):
        assert left.title.get_window_extent(renderer).x1 <= right.get_tightbbox(renderer).x0, left.get_title()


def test_sweep_legend_names_the_classes():
    fig = figs.draw("fig5", figs.FigureData(sweep(), pd.DataFrame()))
    (legend,) = fig.legends
    assert legend.get_title().get_text() == "class"
    assert [t.get_text() for t in legend.get_texts()] == [CIFAR10_NAMES[0], CIFAR10_NAMES[2], "mean"]


def test_tsne_panels_name_index_classes_by_name(tmp_path):
    """In miniature (no MVTec run) the panels are the stand-in's classes: named, not numbered."""
    rows = summary("fig3", ["cifar10"], [3, 0], ["ntxent", "supcon", "firm"], ["rot"], ["cos"], seeds=(0,))
    rows["run_dir"] = [str(tmp_path / d) for d in rows["run_dir"]]
    for i, run_dir in enumerate(rows["run_dir"].unique()):
        write_cache(run_dir, seed=i)
    fig = figs.draw("fig3", figs.FigureData(rows, pd.DataFrame()))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"{CIFAR10_NAMES[c]}: {loss} (seed 0)\ncifar10 for mvtec {paper}"  # and what it stands in for
                      for c, paper in ((0, "metal_nut"), (3, "screw")) for loss in ("NT-Xent", "SupCon", "FIRM")]


def test_tsne_class_lists_are_the_datasets_own():
    from firm_bench.datasets import mvtec
    from firm_bench.paper.figures.tsne import panel_classes

    assert panel_classes(figs.FIGURES.get("fig6")) == list(mvtec.OBJECTS)
    assert panel_classes(figs.FIGURES.get("fig7")) == list(mvtec.TEXTURES)
    assert panel_classes(figs.FIGURES.get("fig3")) == ["metal_nut", "screw"]
    bad = figs.FigureSpec("fig6", kind="tsne", params={"dataset": "mvtec", "class_group": "shiny"})
    with pytest.raises(ValueError, match="no class group 'shiny'; valid: objects, textures"):
        panel_classes(bad)


def test_each_kind_has_its_drawing_function():
    from firm_bench.paper.figures import curves as c, landscape as la, sweep as sw, tsne as ts

    assert figs.DRAW == {"curves": c.draw_curves, "landscape": la.draw_landscape, "tsne": ts.draw_tsne,
                         "sweep": sw.draw_sweep}
    with pytest.raises(ValueError, match="unknown kind 'pie'"):
        figs.FigureSpec("fig4", kind="pie")
    with pytest.raises(ValueError, match="'fig9' has no title: add one to firm_bench/core/facts/paper.py"):
        figs.FigureSpec("fig9", kind="curves")


# --------------------------------------------------------------------------- #
# what each figure shows: per panel, stand-ins marked, never one picture under several titles
# --------------------------------------------------------------------------- #
def drawn_points(fig) -> set[bytes]:
    """The point sets a figure draws (each scatter's offsets), as bytes."""
    return {np.asarray(c.get_offsets()).round(5).tobytes() for ax in fig.axes for c in ax.collections
            if len(c.get_offsets())}


def pixels(fig) -> np.ndarray:
    """The figure as drawn, without its first 8 % of rows (the 'Figure N' heading)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    image = np.asarray(Image.open(buf).convert("L"))
    return image[int(0.08 * image.shape[0]):]


def same_picture(a, b) -> bool:
    pa, pb = pixels(a), pixels(b)
    return pa.shape == pb.shape and (pa != pb).mean() < 0.01


def tsne_runs(tmp_path, dataset, classes, seed0=0):
    rows = summary("t", [dataset], classes, ["ntxent", "supcon", "firm"], ["rot"], ["cos"], seeds=(0,))
    rows["run_dir"] = [str(tmp_path / d) for d in rows["run_dir"]]
    for i, run_dir in enumerate(rows["run_dir"].unique()):
        write_cache(run_dir, seed=seed0 + i)
    return rows


def test_a_stand_in_tsne_is_drawn_once_and_marked_never_under_three_titles(tmp_path):
    """Three MVTec t-SNE figures from one Fashion-MNIST run: Figure 3 draws it, marked; 6 and 7 say 'not run'."""
    rows = tsne_runs(tmp_path, "fmnist_mini", [0, 1])
    drawn = {n: figs.draw(n, figs.FigureData(rows, pd.DataFrame())) for n in ("fig3", "fig6", "fig7")}
    assert len(drawn_points(drawn["fig3"])) == 2 * 6 and drawn_points(drawn["fig6"]) == drawn_points(drawn["fig7"]) == set()
    for name, fig in drawn.items():
        assert "STAND-IN DATA (fmnist_mini in place of mvtec)" in fig._suptitle.get_text(), name
    titles = [ax.get_title() for ax in drawn["fig3"].axes if ax.get_title()]
    assert titles[0] == "T-shirt/top: NT-Xent (seed 0)\nfmnist_mini for mvtec metal_nut"
    assert titles[-1] == "Trouser: FIRM (seed 0)\nfmnist_mini for mvtec screw"
    for name in ("fig6", "fig7"):
        (ax,) = drawn[name].axes
        assert "not run on mvtec" in ax.texts[0].get_text() and "drawn once, in Figure 3" in ax.texts[0].get_text()
    assert not same_picture(drawn["fig6"], drawn["fig7"]) and not same_picture(drawn["fig3"], drawn["fig6"])


def test_tsne_figures_of_different_classes_draw_different_pictures(tmp_path):
    """On MVTec itself each figure draws its own classes' runs: Figure 3 and Figure 7 share no point set."""
    rows = pd.concat([tsne_runs(tmp_path, "mvtec", ["metal_nut", "screw"]),
                      tsne_runs(tmp_path, "mvtec", ["carpet", "grid"], seed0=10)], ignore_index=True)
    fig3, fig7 = (figs.draw(n, figs.FigureData(rows, pd.DataFrame())) for n in ("fig3", "fig7"))
    assert len(drawn_points(fig3)) == len(drawn_points(fig7)) == 2 * 6  # normal and anomalous, 6 panels
    assert not drawn_points(fig3) & drawn_points(fig7) and not same_picture(fig3, fig7)
    assert "STAND-IN" not in fig3._suptitle.get_text()
    assert [ax.get_title() for ax in fig3.axes][0] == "metal_nut: NT-Xent (seed 0)\nmvtec"
    # control: the comparison sees one picture drawn twice
    assert same_picture(fig3, figs.draw("fig3", figs.FigureData(rows, pd.DataFrame())))


def test_sweep_bands_need_two_seeds_and_one_class_hides_under_no_mean(fixture_data):
    from matplotlib.collections import PolyCollection

    bands = lambda fig: sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)  # noqa: E731
    one = sweep()
    one = one[(one["seed"] == 0) & (one["cls"] == "0")].assign(dataset="fmnist_mini")
    fig = figs.draw("fig5", figs.FigureData(one, pd.DataFrame()))
    assert bands(fig) == 0 and "one seed: line = that seed, no band" in fig._supxlabel.get_text().replace("\n", " ")
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["T-shirt/top"]  # no "mean" line drawn over it
    assert "STAND-IN DATA (fmnist_mini in place of cifar10)" in fig._suptitle.get_text()
    assert all(ax.get_title().endswith("\nfmnist_mini for cifar10") for ax in fig.axes if ax.get_title())
    two = figs.draw("fig5", figs.FigureData(sweep(), pd.DataFrame()))  # the paper's dataset, two seeds
    assert bands(two) > 0 and "line = mean over 2 seeds, band = ±1 std" in two._supxlabel.get_text().replace("\n", " ")
    assert "STAND-IN" not in two._suptitle.get_text()


def test_curves_draw_a_band_only_over_two_seeds(fixture_data):
    from matplotlib.collections import PolyCollection

    rows, curve_rows = fixture_data["curves"]
    for seeds, expect in (((0, 1), True), ((0,), False)):
        fig = figs.draw("fig4", figs.FigureData(rows[rows["seed"].isin(seeds)], curve_rows[curve_rows["seed"].isin(seeds)]))
        has_band = any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
        assert has_band == expect and ("no band" in fig._supxlabel.get_text()) != expect


def test_the_figures_drawn_without_runs_are_the_landscapes():
    """``facts.paper.RUNLESS`` (what every workflow renders by default) names exactly the figures built from no runs."""
    from firm_bench.core.facts.paper import RUNLESS
    from firm_bench.paper.figures.specs import FIGURE_SPECS

    assert set(RUNLESS) == {s.name for s in FIGURE_SPECS if s.kind == "landscape"}
