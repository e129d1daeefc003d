from pathlib import Path

from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_diff, read_json
from subnet_rl.tables import TITLES, layers_table, pairs_table, write_table

with snakemake_job(snakemake):
    diffs = {Path(p).stem: read_diff(p) for p in snakemake.input.diffs}
    downloads = {Path(p).stem: read_json(p, ["revision", "path"]) for p in snakemake.input.downloads}
    table = pairs_table(snakemake.params.pairs, diffs, downloads)
    out = snakemake.output
    write_table(table, out.pairs_md, out.pairs_csv, "Update sparsity of public checkpoint pairs (%): ours beside the "
                "paper's", out.pairs_tex)
    write_table(layers_table(diffs, snakemake.params.criterion), out.pairs_layers_md, out.pairs_layers_csv,
                TITLES["pairs_layers"], out.pairs_layers_tex)
