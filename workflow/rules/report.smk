# What a researcher reads: a figure per analysis (a rule each, reading only its tables) and the paper's
# claims with verdicts computed from the tables; `snakemake --report` puts them in one HTML page.

from subnet_rl.findings import DEFAULT_THRESHOLDS
from subnet_rl.figures import FIGURES


def figure_tables(name):
    """The final tables a figure reads, among those this configuration writes."""
    written = {Path(t).stem for t in final_tables() if t.endswith(".csv")}
    return [f"results/tables/{t}.csv" for t in FIGURES[name][0] if t in written]


def presentation():
    """Figures and findings, for a study (a config with runs); checkpoint pairs alone get their table."""
    if not RUNS:
        return []
    return ["results/findings.csv", *expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"])]


# Colours follow runs: the config's full run list, so a run keeps its colour in every figure.
FIGURE_RUNS = RUNS + (["sft-from-init"] if WARMUP else [])

for _figure in FIGURES:

    rule:
        name:
            f"figure_{_figure}"
        input:
            figure_tables(_figure),
        output:
            png=report(
                f"results/figures/{_figure}.png",
                caption=f"../report/figures/{_figure}.rst",
                category=CATEGORY[_figure],
                subcategory="Figures",
            ),
            pdf=f"results/figures/{_figure}.pdf",
        params:
            code=code("figure.py"),
            figure=_figure,
            runs=FIGURE_RUNS,
        conda:
            "../../envs/subnet-rl.yaml"
        log:
            f"results/logs/figures/{_figure}.log",
        benchmark:
            f"results/benchmarks/figures/{_figure}.tsv"
        script:
            "../scripts/figure.py"


rule findings:
    input:
        [t for t in final_tables() if t.endswith(".csv")],
    output:
        csv="results/findings.csv",
        md=report(
            "results/findings.md",
            caption="../report/findings.rst",
            category=CATEGORY["findings"],
        ),
    params:
        code=code("findings.py"),
        criterion=config["analyses"]["criterion"],
        thresholds=config["findings"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    script:
        "../scripts/findings.py"
