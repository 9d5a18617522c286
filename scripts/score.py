"""Rule score: every checkpoint of a run -> tidy score rows (test, validation and training sets)."""

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
pool_size = len(dataset.train_labels)
imbalanced = imbalance.load_indices(snakemake.input.imbalanced, pool_size)
training = imbalance.load_indices(snakemake.input.training, pool_size)
identity = study.run_identity(snakemake.config, wildcards.dataset, wildcards.profile, int(wildcards.seed),
                              wildcards.method, dataset.n_classes)
rows = scoring.score_run(manifest, dataset, imbalanced, identity, training=training,
                         splits=snakemake.params.splits, device=snakemake.params.device,
                         silhouette_per_class=snakemake.params.silhouette_per_class)
scoring.write_rows(rows, snakemake.output.scores)
log.info("scored %d checkpoints on %s: %d rows", len(manifest["checkpoints"]),
         ", ".join(sorted({row["split"] for row in rows})), len(rows))
