"""Rule train_bundle: a bundle of runs -> their checkpoints and manifests, and their score rows."""

import _src  # noqa: F401  (puts src/ on sys.path)

import torch

from imbalance_study import bundles, logs

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
bundles.run_bundle(snakemake.config, snakemake.wildcards.dataset, snakemake.wildcards.profile, snakemake.params.runs,
                   dataset_path=snakemake.input.dataset, run_dir_template=snakemake.params.run_dir,
                   index_template=snakemake.params.index_path, scores_path=snakemake.output.scores,
                   runs_path=snakemake.output.runs, device=snakemake.params.device, stack=snakemake.params.stack,
                   scoring_settings=snakemake.params.scoring, threads=snakemake.threads)
