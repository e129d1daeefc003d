# subnet-rl: reproduce "Reinforcement Learning Finetunes Small Subnetworks in Large Language Models"
# (Mukherjee et al., NeurIPS 2025) end to end. The rules read as the study's table of contents.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the command line names config files (then only those count, so
# `--configfile config/paper.yaml` does not also run the demo study).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/preferences.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/diff.smk"
include: "workflow/rules/mask.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/overlap.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_tables(),
        presentation(),
    default_target: True
