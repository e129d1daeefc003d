from subnet_rl.figures import draw, save_figure
from subnet_rl.findings import read_tables
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    figure = draw(snakemake.params.figure, read_tables(snakemake.input), snakemake.params.runs)
    save_figure(figure, snakemake.output.png, snakemake.output.pdf)
