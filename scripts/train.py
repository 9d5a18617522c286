"""Rule train: one run (dataset, profile, seed, method) -> checkpoints and the run manifest."""

import _src  # noqa: F401  (puts src/ on sys.path)

import json
from pathlib import Path

import torch

from imbalance_study import datasets, imbalance, logs, training

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wildcards = snakemake.wildcards
dataset = datasets.load(snakemake.input.dataset)
indices = imbalance.load_indices(snakemake.input.index, len(dataset.train_labels))
spec = training.RunSpec(dataset=wildcards.dataset, profile=wildcards.profile, seed=int(wildcards.seed),
                        method=wildcards.method, model=snakemake.params.model,
                        model_options=snakemake.params.model_options,
                        protocol=training.Protocol.from_config(snakemake.params.protocol))
inputs = {"index_file": Path(snakemake.input.index).name, "index_sha256": training.file_sha256(snakemake.input.index),
          "dataset_sha256": dataset.digest}
phase_one = None
if snakemake.input.get("phase_one"):
    with open(snakemake.input.phase_one) as handle:
        phase_one = json.load(handle)
    log.info("second phase: starting from %s", snakemake.input.phase_one)
batches = None
if dataset.kind == "image_folder":  # too large for memory: decoded per batch
    batches = training.ImageFolderBatches(dataset, spec.init_seed(), training.resolve_device(snakemake.params.device),
                                          threads=max(1, snakemake.threads))
manifest = training.train(spec, dataset.train_images, dataset.train_labels, indices, batches=batches,
                          run_dir=Path(snakemake.output.manifest).parent, manifest_path=snakemake.output.manifest,
                          fingerprint_extra=inputs, device=snakemake.params.device, phase_one=phase_one)
log.info("trained %d iterations on %d examples in %.1f s on %s", spec.protocol.iterations,
         manifest["training_examples"], manifest["train_seconds"], manifest["device"])
