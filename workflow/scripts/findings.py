from subnet_rl.findings import compute_findings, read_tables, write_findings
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    findings = compute_findings(read_tables(snakemake.input), snakemake.params.criterion, snakemake.params.thresholds)
    print(findings[["claim", "verdict"]].to_string(index=False))
    write_findings(findings, snakemake.output.csv, snakemake.output.md)
