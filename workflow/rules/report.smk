# What a researcher reads: a figure per analysis (a rule each, reading only its tables) and the paper's
# claims with verdicts computed from the tables; `snakemake --report` puts them in one HTML page.

from subnet_rl.stage_outputs import checks_of

for _figure in FIGURES:

    rule:
        name:
            f"figure_{_figure}"
        input:
            tables=figure_tables(_figure),
            checked=checks_of(f"figure_{_figure}"),
        output:
            png=report(
                f"results/figures/{_figure}.png",
                caption=f"../report/figures/{_figure}.rst",
                category=CATEGORY[_figure],
                subcategory="Figures",
            ),
            pdf=f"results/figures/{_figure}.pdf",
        params:
            # figure.py with the registry, and this figure's drawer: editing one drawer reruns one figure.
            code=f"{code('figure.py')}+{code_hash(FIGURES[_figure].module_file)}",
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
        tables=[t for t in final_tables() if t.endswith(".csv")],
        checked=checks_of("findings"),
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
