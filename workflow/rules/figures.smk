# Paper figures: figures/<fig>.{png,pdf} (firm_bench.paper.figures), from the
# summaries and learning curves of the experiments feeding each figure. t-SNE
# runs with the rule's threads. The PNG is registered in Snakemake's own report.
localrules:
    paper_figure,


rule paper_figure:
    input:
        summaries=paper_item_summaries,
        curves=paper_item_curves,
    output:
        png=report(
            os.path.join(FIGURES_DIR, "{item}.png"),
            category="Paper figures",
            caption="../report/paper_figure.rst",
        ),
        pdf=os.path.join(FIGURES_DIR, "{item}.pdf"),
    log:
        log_file("paper_figure_{item}.log"),
    wildcard_constraints:
        item="|".join(paper.FIGURES),
    threads: CONFIG["threads"]["score"]
    params:
        out_dir=subpath(output.png, parent=True),
    shell:
        "firm-bench figure {wildcards.item} --summaries {input.summaries} --curves {input.curves}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"
