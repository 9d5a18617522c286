"""Rule indices: balanced pool + profile -> each seed's imbalanced set and its sampled versions."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import datasets, logs, sampling
from imbalance_study.atomic import write_json

log = logs.to_file(snakemake.log[0])
wildcards, params = snakemake.wildcards, snakemake.params
labels = datasets.load_labels(snakemake.input.dataset, "train")
manifest = sampling.write_index_files(
    labels, wildcards.profile, int(params.cap), params.seeds, params.minority_classes, params.index_names,
    path_of=lambda seed, name: params.index_path.format(dataset=wildcards.dataset, profile=wildcards.profile,
                                                        seed=seed, index=name),
    context=f"{wildcards.dataset}/{wildcards.profile}")
write_json(snakemake.output.manifest, manifest)
for seed, files in manifest.items():
    log.info("seed %s: %s", seed, "; ".join(f"{name} {entry['class_counts']}" for name, entry in files.items()))
