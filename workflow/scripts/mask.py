from subnet_rl.diff import TOLERANCE_KINDS, Criterion
from subnet_rl.jobs import snakemake_job
from subnet_rl.mask_extraction import extract_masks

with snakemake_job(snakemake):
    c = snakemake.params.criterion
    criterion = Criterion(c["criterion"], c["tolerance"] if c["criterion"] in TOLERANCE_KINDS else None)
    print(extract_masks(snakemake.input.before, snakemake.input.after, criterion, snakemake.output[0],
                        workers=snakemake.threads))
