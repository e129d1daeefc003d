from subnet_rl.comparisons import ablation_table, algorithms_table, controls_table, data_table, precision_table
from subnet_rl.frontier import frontier_table
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_csv
from subnet_rl.tables import TITLES, dynamics_tables, pair_likelihoods, write_table

with snakemake_job(snakemake):
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    sparsity, specs, criterion = read_csv(inp.sparsity), p.runs, p.criterion
    tables = {"algorithms": algorithms_table(sparsity, criterion, specs),
              "controls": controls_table(specs, sparsity, criterion),
              "frontier": frontier_table(specs, sparsity, criterion),
              "ablations": ablation_table(specs, sparsity, criterion),
              "precision": precision_table(specs, sparsity, criterion),
              "data": data_table(specs, sparsity, criterion, pair_likelihoods(p.pairs, inp.pairs)),
              **dynamics_tables(inp.dynamics_steps, inp.dynamics_split)}
    for name, table in tables.items():
        write_table(table, out[f"{name}_md"], out[f"{name}_csv"], TITLES[name], out[f"{name}_tex"])
