from subnet_rl.figures import draw
from subnet_rl.figures.canvas import save_figure
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_tables

with snakemake_job(snakemake):
    figure = draw(snakemake.params.figure, read_tables(snakemake.input.tables), snakemake.params.runs)
    save_figure(figure, snakemake.output.png, snakemake.output.pdf)
