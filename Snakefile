# A systematic study of class imbalance in convolutional networks (Buda, Maki & Mazurowski, 2018),
# and the learning dynamics behind it. See README.md.

from snakemake.utils import min_version

min_version("9.0")

report: "workflow/report/workflow.rst"


# A study config given with --configfile is complete by itself and replaces the default study
# (configs/*.yaml); --config key=value still adjusts the default.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/imbalance.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        table=plan.SCORES,
        provenance=plan.PROVENANCE,
        figures=drawn_figures(),
        comparison_page=comparison_page(),
    default_target: True
