from subnet_rl.findings import compute_findings, write_findings
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_tables

with snakemake_job(snakemake):
    p = snakemake.params
    findings = compute_findings(read_tables(snakemake.input.tables), p.criterion, p.thresholds)
    print(findings[["claim", "verdict"]].to_string(index=False))
    write_findings(findings, snakemake.output.csv, snakemake.output.md)
