"""Rule train_bundle: a bundle of runs -> their checkpoints and manifests, and their score rows."""

import _src  # noqa: F401  (puts src/ on sys.path)

import torch

from imbalance_study import bundles, logs

log = logs.to_file(snakemake.log[0])
bundles.exit_with_snakemake()
torch.set_num_threads(snakemake.threads)
bundles.run_bundle(snakemake.params.members, dataset_path=snakemake.input.dataset,
                   indices_path=snakemake.input.indices, scores_path=snakemake.output.scores, runs_path=snakemake.output.runs,
                   device=snakemake.params.device, stack=snakemake.params.stack, conv=snakemake.params.conv,
                   graphs=snakemake.params.graphs,
                   scoring_settings=snakemake.params.scoring, threads=snakemake.threads)
