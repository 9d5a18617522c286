"""Rule score: every checkpoint of a run -> tidy score rows on the balanced test set."""

import _src  # noqa: F401  (puts src/ on sys.path)

import json

import torch

from imbalance_study import datasets, imbalance, logs, scoring, study

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wildcards = snakemake.wildcards
dataset = datasets.load(snakemake.input.dataset)
with open(snakemake.input.manifest) as handle:
    manifest = json.load(handle)
imbalanced = imbalance.load_indices(snakemake.input.imbalanced, len(dataset.train_labels))
identity = study.run_identity(wildcards.dataset, wildcards.profile, int(wildcards.seed), wildcards.method,
                              dataset.n_classes)
rows = scoring.score_run(manifest, dataset, imbalanced, identity, device=snakemake.params.device)
scoring.write_rows(rows, snakemake.output.scores)
log.info("scored %d checkpoints: %d rows", len(manifest["checkpoints"]), len(rows))
