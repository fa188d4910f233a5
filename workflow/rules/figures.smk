# Paper figures: figures/<fig>.{png,pdf} (firm_bench.paper.figures), from the
# summaries and learning curves of the experiments feeding each figure
# (helpers in paper_tables.smk). t-SNE runs with the rule's threads.
FIGURES_DIR = "figures"


localrules:
    paper_figure,


rule paper_figure:
    input:
        summaries=paper_item_summaries,
        curves=paper_item_curves,
    output:
        png=os.path.join(FIGURES_DIR, "{item}.png"),
        pdf=os.path.join(FIGURES_DIR, "{item}.pdf"),
    log:
        "results/logs/paper_figure_{item}.log",
    params:
        out_dir=subpath(output[0], parent=True),
    threads: config["threads"]["score"]
    wildcard_constraints:
        item="|".join(catalog.names("figures")),
    shell:
        "firm-bench figure {wildcards.item} --summaries {input.summaries} --curves {input.curves}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"
